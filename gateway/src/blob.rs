//! Forwards upload (`PUT /uploads/…`) and download (`GET /files/…`) requests to the session
//! service's blob endpoint, streaming both ways. The URLs carry their own short-lived
//! capability (an upload token or a signed expiry), so no bearer token is needed here.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http::{HeaderName, StatusCode, header};
use zhengna_platform::StartupError;

#[derive(Clone)]
pub struct BlobProxy {
    base: String,
    http: reqwest::Client,
}

/// Request headers passed on; everything else (cookies, authorisation) stays here.
const REQUEST_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::CONTENT_LENGTH];
/// Response headers passed back.
const RESPONSE_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_DISPOSITION,
    header::CACHE_CONTROL,
    header::X_CONTENT_TYPE_OPTIONS,
    header::CONTENT_SECURITY_POLICY,
];

impl BlobProxy {
    pub fn new(base: &str) -> Result<Self, StartupError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(StartupError::Config(format!("blob_backend `{base}` is not an http(s) URL")));
        }
        let http =
            reqwest::Client::builder().build().map_err(|e| StartupError::Other(format!("blob proxy client: {e}")))?;
        Ok(Self { base, http })
    }
}

pub async fn forward(State(proxy): State<BlobProxy>, req: Request) -> Response {
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path}", proxy.base);
    let mut out = proxy.http.request(req.method().clone(), url);
    for name in REQUEST_HEADERS {
        if let Some(v) = req.headers().get(&name) {
            out = out.header(name, v.clone());
        }
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let res = match out.body(body).send().await {
        Ok(res) => res,
        Err(e) => {
            tracing::warn!(error = %e, "blob backend unreachable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "code": "unavailable", "message": "服务繁忙，请稍后重试。" })),
            )
                .into_response();
        }
    };
    let status = res.status();
    let mut headers = http::HeaderMap::new();
    for name in RESPONSE_HEADERS {
        if let Some(v) = res.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let body = Body::from_stream(res.bytes_stream().map_err(std::io::Error::other));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
