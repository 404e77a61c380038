//! Generic forwarding: authenticate, apply the caller-kind policy, replace identity and
//! trace headers, and pass the call to the backend that owns the service's package. No
//! per-RPC code lives here.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tracing::Instrument;
use zhengna_platform::identity::{self, Caller, IdentityKey};
use zhengna_platform::telemetry;

use crate::auth::{AuthError, Authenticator};

pub struct Routes {
    /// `zhengna.session.v1` → channel to the session service.
    pub backends: HashMap<String, Channel>,
    /// Fully qualified services a taxpayer token may call; everything else is staff-only.
    pub taxpayer_services: HashSet<String>,
    /// Service-to-service APIs, never reachable from outside.
    pub internal_services: HashSet<String>,
}

#[derive(Clone)]
pub struct Forward {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Authenticator,
    key: IdentityKey,
    limiter: crate::limits::Limiter,
    routes: Routes,
}

impl Forward {
    pub fn new(auth: Authenticator, key: IdentityKey, limiter: crate::limits::Limiter, routes: Routes) -> Self {
        Self { inner: Arc::new(Inner { auth, key, limiter, routes }) }
    }
}

fn reject(status: tonic::Status) -> http::Response<Body> {
    status.into_http()
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or(AuthError::Malformed)?;
    Ok(token.trim())
}

/// Largest request body read (and discarded) before answering a refused call.
const DRAIN_LIMIT: usize = 1 << 20;

impl Inner {
    /// Forwards the call, or refuses it after reading the request body: answering an
    /// HTTP/1.1 grpc-web call before its body is read makes the server close the connection
    /// under the client's write (EPIPE instead of the status).
    async fn forward(&self, req: http::Request<Body>) -> http::Response<Body> {
        match self.route(req).await {
            Ok(res) => res,
            Err((status, body)) => {
                use http_body_util::BodyExt;
                let _ = http_body_util::Limited::new(body, DRAIN_LIMIT).collect().await;
                reject(status)
            }
        }
    }

    async fn route(&self, mut req: http::Request<Body>) -> Result<http::Response<Body>, (tonic::Status, Body)> {
        // Whatever identity a client claims is never trusted.
        identity::strip(req.headers_mut());
        let path = req.uri().path().to_owned();
        let refuse = |status: tonic::Status, req: http::Request<Body>| Err((status, req.into_body()));
        let Some((service, _method)) = path.trim_start_matches('/').split_once('/') else {
            return refuse(tonic::Status::unimplemented("unknown method"), req);
        };
        let service = service.to_owned();
        let package = service.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
        let Some(channel) = self.routes.backends.get(package).cloned() else {
            return refuse(tonic::Status::unimplemented(format!("unknown service {service}")), req);
        };
        if self.routes.internal_services.contains(&service) {
            metrics::counter!("gateway_policy_rejected_total").increment(1);
            return refuse(tonic::Status::permission_denied(format!("{service} is internal")), req);
        }
        let caller = match bearer(req.headers()).and_then(|t| self.auth.verify(t)) {
            Ok(c) => c,
            Err(e) => {
                metrics::counter!("gateway_auth_rejected_total", "reason" => reason(&e)).increment(1);
                return refuse(tonic::Status::unauthenticated(e.to_string()), req);
            }
        };
        if !self.limiter.allow(&caller.subject(), std::time::Instant::now()) {
            metrics::counter!("gateway_rate_limited_total").increment(1);
            let mut details = tonic_types::ErrorDetails::new();
            details.set_localized_message("zh-CN", "您的操作过于频繁，请稍后再试。");
            use tonic_types::StatusExt;
            return refuse(
                tonic::Status::with_error_details(tonic::Code::ResourceExhausted, "rate limit exceeded", details),
                req,
            );
        }
        if matches!(caller, Caller::Taxpayer(_)) && !self.routes.taxpayer_services.contains(&service) {
            metrics::counter!("gateway_policy_rejected_total").increment(1);
            return refuse(tonic::Status::permission_denied(format!("{service} is for tax-bureau staff only")), req);
        }
        req.headers_mut().remove(http::header::AUTHORIZATION);
        req.headers_mut().remove(http::header::COOKIE);

        let span = tracing::info_span!(
            "gateway.forward",
            otel.name = %format!("gateway {path}"),
            otel.kind = "server",
            rpc.method = %path,
            caller = %caller.subject(),
        );
        telemetry::set_parent_from_headers(&span, req.headers());
        telemetry::inject_headers(&span, req.headers_mut());
        let (id, sig) = self.key.sign(&caller, identity::now_unix());
        if let (Ok(id), Ok(sig)) = (http::HeaderValue::from_str(&id), http::HeaderValue::from_str(&sig)) {
            req.headers_mut().insert(identity::IDENTITY_HEADER, id);
            req.headers_mut().insert(identity::SIGNATURE_HEADER, sig);
        }
        match channel.oneshot(req).instrument(span).await {
            Ok(res) => Ok(res),
            Err(e) => {
                tracing::warn!(error = %e, %service, "backend unreachable");
                Ok(reject(tonic::Status::unavailable("service temporarily unavailable")))
            }
        }
    }
}

fn reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing",
        AuthError::Malformed => "malformed",
        AuthError::Algorithm => "algorithm",
        AuthError::UnknownKey => "unknown_key",
        AuthError::Expired => "expired",
        AuthError::Invalid(_) => "invalid",
        AuthError::Claims(_) => "claims",
    }
}

impl tower::Service<http::Request<Body>> for Forward {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}
