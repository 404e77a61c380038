//! gRPC plumbing shared by servers and clients: the server middleware that verifies the
//! internal identity, joins the caller's trace and records metrics; and helpers that build
//! outgoing requests carrying identity and trace context.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::body::Body;
use tracing::Instrument;

use crate::identity::{self, Caller, IdentityKey};
use crate::telemetry;

/// Tower layer installed on every service's gRPC server.
#[derive(Clone)]
pub struct ServerLayer {
    service: &'static str,
    key: IdentityKey,
    topics: Arc<Vec<(&'static str, &'static str)>>,
}

impl ServerLayer {
    /// `topics` maps gRPC service names to the piece of work that will implement their
    /// remaining methods; generated default stubs answer UNIMPLEMENTED naming that topic.
    pub fn new(service: &'static str, key: IdentityKey, topics: Vec<(&'static str, &'static str)>) -> Self {
        Self { service, key, topics: Arc::new(topics) }
    }
}

impl<S> tower::Layer<S> for ServerLayer {
    type Service = ServerMiddleware<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerMiddleware { inner, service: self.service, key: self.key.clone(), topics: self.topics.clone() }
    }
}

#[derive(Clone)]
pub struct ServerMiddleware<S> {
    inner: S,
    service: &'static str,
    key: IdentityKey,
    topics: Arc<Vec<(&'static str, &'static str)>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> tower::Service<http::Request<Body>> for ServerMiddleware<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // Take the ready service, leave a fresh clone behind (tower's clone-and-swap idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service;
        let method = req.uri().path().to_owned();
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %format!("{service} {method}"),
            service,
            rpc.method = %method,
            otel.kind = "server",
        );
        telemetry::set_parent_from_headers(&span, req.headers());

        let verified = verify_identity(&self.key, req.headers());
        let grpc_service = method.trim_start_matches('/').split('/').next().unwrap_or_default();
        let topic = self.topics.iter().find(|(name, _)| *name == grpc_service).map(|(_, t)| *t);
        Box::pin(
            async move {
                match verified {
                    Ok(Some(caller)) => {
                        req.extensions_mut().insert(caller);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "rejected internal identity");
                        metrics::counter!("grpc_identity_rejected_total", "service" => service)
                            .increment(1);
                        let status = tonic::Status::unauthenticated(format!("identity: {e}"));
                        return Ok(status.into_http());
                    }
                }
                let started = Instant::now();
                let mut res = inner.call(req).await;
                if let (Some(topic), Ok(r)) = (topic, res.as_mut()) {
                    name_unimplemented_topic(r, topic);
                }
                let code = match &res {
                    Ok(r) => r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "transport".to_owned(),
                };
                metrics::counter!("grpc_server_requests_total", "service" => service, "method" => method.clone(), "code" => code).increment(1);
                metrics::histogram!("grpc_server_headers_seconds", "service" => service, "method" => method)
                    .record(started.elapsed().as_secs_f64());
                res
            }
            .instrument(span),
        )
    }
}

/// Replaces the generic message of a generated default stub with the topic that will
/// implement the method; explicit messages are left alone.
fn name_unimplemented_topic(res: &mut http::Response<Body>, topic: &str) {
    let is_unimplemented = res.headers().get("grpc-status").is_some_and(|v| v.as_bytes() == b"12");
    let explicit = res.headers().get("grpc-message").is_some_and(|v| {
        v.as_bytes().starts_with(b"not%20implemented%20yet") || v.as_bytes().starts_with(b"not implemented yet")
    });
    if is_unimplemented && !explicit {
        let msg = format!("not implemented yet: {topic}");
        let status = tonic::Status::unimplemented(msg);
        if let Ok(v) = http::HeaderValue::from_str(&percent_encode(status.message())) {
            res.headers_mut().insert("grpc-message", v);
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn verify_identity(key: &IdentityKey, headers: &http::HeaderMap) -> Result<Option<Caller>, identity::Error> {
    let identity = headers.get(identity::IDENTITY_HEADER).and_then(|v| v.to_str().ok());
    let sig = headers.get(identity::SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    match (identity, sig) {
        (None, None) => Ok(None),
        (Some(i), Some(s)) => key.verify(i, s, identity::now_unix()).map(Some),
        _ => Err(identity::Error::Malformed),
    }
}

/// Builds an outgoing request on behalf of `caller`, carrying the current trace context.
pub fn outgoing<T>(message: T, caller: &Caller, key: &IdentityKey, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    key.attach(caller, req.metadata_mut());
    telemetry::inject_metadata(&tracing::Span::current(), req.metadata_mut());
    req.set_timeout(timeout);
    req
}

/// A lazily connecting channel to another service (`http://host:port`).
pub fn channel(url: &str, connect_timeout: Duration) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}
