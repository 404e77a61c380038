//! The browser edge: grpc-web (HTTP/1.1 and HTTP/2) and plain gRPC on one port, CORS,
//! JWT authentication, forwarding by gRPC service name, and the `web/` build.
//!
//! The gateway knows no RPC: it maps `/<package>.<Service>/<Method>` to the backend that
//! owns `<package>` and leaves all authorisation beyond "is this a staff service" to the
//! services, which verify the signed internal identity it attaches.

pub mod auth;
mod blob;
pub mod dev;
pub mod limits;
mod proxy;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use zhengna_platform::StartupError;
use zhengna_platform::identity::IdentityConfig;
use zhengna_platform::main_support::ServiceConfig;
use zhengna_platform::telemetry::TelemetryConfig;

use crate::auth::{AuthConfig, Authenticator};
use crate::dev::{DemoIdentity, Minter};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// grpc-web, gRPC and static files.
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub telemetry: TelemetryConfig,
    pub identity: IdentityConfig,
    pub auth: AuthConfig,
    /// Proto package → backend URL.
    pub backends: BTreeMap<String, String>,
    /// The session service's blob endpoint: `/uploads/…` (PUT) and `/files/…` (GET) go there.
    pub blob_backend: String,
    /// Services only other services may call; refused at the edge whoever asks.
    pub internal_services: Vec<String>,
    /// Services taxpayer tokens may call.
    pub taxpayer_services: Vec<String>,
    /// Browser origins allowed by CORS (the e-tax bureau pages embedding the widget).
    pub cors_allowed_origins: Vec<String>,
    /// Directory of the built web front end.
    pub web_dir: PathBuf,
    /// HTTP/2 concurrent streams per client connection (each open Subscribe is one).
    pub max_streams_per_connection: u32,
    /// Per-identity call rate limits.
    pub rate_limit: limits::RateLimitConfig,
}

impl Default for Config {
    fn default() -> Self {
        let backends = [
            ("zhengna.answer.v1", "http://127.0.0.1:7061"),
            ("zhengna.queue.v1", "http://127.0.0.1:7062"),
            ("zhengna.session.v1", "http://127.0.0.1:7063"),
            ("zhengna.appointment.v1", "http://127.0.0.1:7064"),
            ("zhengna.messaging.v1", "http://127.0.0.1:7065"),
        ];
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9460)),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            auth: AuthConfig::default(),
            backends: backends.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            blob_backend: "http://127.0.0.1:7073".into(),
            internal_services: vec!["zhengna.session.v1.AttachmentLinkService".into()],
            taxpayer_services: [
                "zhengna.answer.v1.AnswerService",
                "zhengna.answer.v1.SpeechService",
                "zhengna.queue.v1.QueueService",
                "zhengna.session.v1.ConversationService",
                "zhengna.appointment.v1.AppointmentService",
                "zhengna.messaging.v1.InboxService",
                "zhengna.messaging.v1.LeaveMessageService",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            cors_allowed_origins: vec!["http://127.0.0.1:8080".into(), "http://localhost:8080".into()],
            web_dir: PathBuf::from("web/dist"),
            max_streams_per_connection: 1000,
            rate_limit: limits::RateLimitConfig::default(),
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

pub struct App {
    addr: SocketAddr,
    server: JoinHandle<Result<(), std::io::Error>>,
    shutdown: CancellationToken,
}

#[derive(Deserialize)]
struct TokenQuery {
    user: String,
    #[serde(default)]
    ttl_secs: Option<i64>,
    /// Replaces the demo login's subject (纳税人识别号 / staff id), so tests and demos can act
    /// as many distinct taxpayers of the same kind. Development issuer only.
    #[serde(default)]
    sub: Option<String>,
}

fn is_grpc(req: &http::Request<axum::body::Body>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let key = cfg.identity.key()?;
        let mut issuers = cfg.auth.issuers.clone();
        let minter = if cfg.auth.dev_issuer {
            issuers.extend(dev::dev_issuers());
            Some(Arc::new(Minter::generate("zhengna-dev").map_err(StartupError::Other)?))
        } else {
            None
        };
        if issuers.is_empty() {
            return Err(StartupError::Config("auth.issuers is empty and auth.dev_issuer is off".into()));
        }
        let auth = Authenticator::new(issuers, cfg.auth.leeway_secs);
        let http = reqwest::Client::builder().build().map_err(|e| StartupError::Other(format!("http client: {e}")))?;
        auth.load_all(&http).await?;
        if let Some(m) = &minter {
            let n = auth.issuers().len();
            auth.set_jwks(n - 2, m.jwks());
            auth.set_jwks(n - 1, m.jwks());
        }
        tokio::spawn(auth.clone().refresh_forever(
            http,
            Duration::from_secs(cfg.auth.refresh_secs.max(10)),
            shutdown.clone(),
        ));

        let mut backends = HashMap::new();
        for (package, url) in &cfg.backends {
            let channel = zhengna_platform::grpc::channel(url, Duration::from_secs(3))
                .map_err(|e| StartupError::Config(format!("backends.{package}: {e}")))?;
            backends.insert(package.clone(), channel);
        }
        let forward = proxy::Forward::new(
            auth,
            key,
            limits::Limiter::new(cfg.rate_limit.clone()),
            proxy::Routes {
                backends,
                taxpayer_services: cfg.taxpayer_services.iter().cloned().collect::<HashSet<_>>(),
                internal_services: cfg.internal_services.iter().cloned().collect::<HashSet<_>>(),
            },
        );
        let grpc = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebLayer::new()).service(forward);
        // The web build (web/dist); before `npm run build` has run, the placeholder page.
        let web_dir = if cfg.web_dir.join("index.html").exists() {
            cfg.web_dir.clone()
        } else {
            let placeholder = cfg.web_dir.with_file_name("static");
            tracing::warn!(web_dir = %cfg.web_dir.display(), fallback = %placeholder.display(), "web build missing; serving the placeholder page (run `npm ci && npm run build` in web/)");
            placeholder
        };
        let index = web_dir.join("index.html");
        let files = ServeDir::new(&web_dir).fallback(ServeFile::new(index));
        let dispatch = tower::service_fn(move |req: http::Request<axum::body::Body>| {
            let grpc = grpc.clone();
            let files = files.clone();
            async move {
                if is_grpc(&req) {
                    let res = match grpc.oneshot(req.map(tonic::body::Body::new)).await {
                        Ok(res) => res.map(axum::body::Body::new),
                        Err(e) => {
                            tracing::warn!(error = %e, "grpc-web translation failed");
                            tonic::Status::internal("grpc-web translation failed").into_http::<axum::body::Body>()
                        }
                    };
                    Ok::<_, Infallible>(res)
                } else {
                    match files.oneshot(req).await {
                        Ok(res) => Ok(res.map(axum::body::Body::new)),
                        Err(never) => match never {},
                    }
                }
            }
        });

        let blob = blob::BlobProxy::new(&cfg.blob_backend)?;
        let mut router = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/uploads/{id}", axum::routing::put(blob::forward).with_state(blob.clone()))
            .route("/files/{id}", axum::routing::get(blob::forward).with_state(blob));
        if let Some(minter) = minter {
            let m = minter.clone();
            router = router
                .route("/dev/identities", axum::routing::get(|| async { axum::Json(dev::DEMO_IDENTITIES) }))
                .route(
                    "/dev/token",
                    axum::routing::get(move |Query(q): Query<TokenQuery>| {
                        let m = m.clone();
                        async move {
                            let Some(who) = DemoIdentity::find(&q.user) else {
                                return (http::StatusCode::NOT_FOUND, "unknown demo identity").into_response();
                            };
                            let ttl = q.ttl_secs.unwrap_or(8 * 3600).clamp(60, 24 * 3600);
                            let mut claims = who.claims(chrono::Utc::now().timestamp(), ttl);
                            if let Some(sub) = q.sub.as_deref() {
                                if sub.is_empty()
                                    || sub.len() > 64
                                    || !sub.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                                {
                                    return (http::StatusCode::BAD_REQUEST, "sub: 1-64 letters, digits, - or _")
                                        .into_response();
                                }
                                claims.sub = sub.to_owned();
                            }
                            match m.mint(&claims) {
                                Ok(token) => axum::Json(serde_json::json!({
                                    "token": token,
                                    "expires_in": ttl,
                                    "identity": who,
                                    "sub": claims.sub,
                                }))
                                .into_response(),
                                Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                            }
                        }
                    }),
                )
                .route("/dev/jwks.json", axum::routing::get(move || async move { minter.jwks_json() }));
        }
        let cors = cors_layer(&cfg.cors_allowed_origins)?;
        let router = router.fallback_service(dispatch).layer(cors);

        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let metrics_listener = TcpListener::bind(cfg.metrics_listen).await?;
        let handle = zhengna_platform::server::metrics_handle();
        let metrics_app =
            axum::Router::new().route("/metrics", axum::routing::get(move || std::future::ready(handle.render())));
        let s = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, metrics_app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        let server = tokio::spawn(serve_http(listener, router, cfg.max_streams_per_connection, shutdown.clone()));
        tracing::info!(%addr, "gateway serving grpc-web, gRPC and web");
        Ok(Self { addr, server, shutdown })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.shutdown.cancelled().await;
        match tokio::time::timeout(Duration::from_secs(10), self.server).await {
            Ok(Ok(Ok(()))) | Err(_) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(e)) => Err(StartupError::Other(e.to_string())),
        }
    }
}

fn cors_layer(origins: &[String]) -> Result<CorsLayer, StartupError> {
    let origins = origins
        .iter()
        .map(|o| http::HeaderValue::from_str(o).map_err(|_| StartupError::Config(format!("cors origin `{o}`"))))
        .collect::<Result<Vec<_>, _>>()?;
    let header = |s: &'static str| http::HeaderName::from_static(s);
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([http::Method::POST, http::Method::GET, http::Method::PUT, http::Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("authorization"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("traceparent"),
            header("connect-protocol-version"),
        ])
        .expose_headers([header("grpc-status"), header("grpc-message"), header("grpc-status-details-bin")])
        .max_age(Duration::from_secs(600)))
}

/// Serves HTTP/1.1 and HTTP/2 (with upgrades) until `shutdown`, then lets open connections
/// finish for up to 10 seconds. Written out instead of `axum::serve` to raise HTTP/2's
/// concurrent streams per connection: hyper's default of 200 would cap the long-lived
/// Subscribe streams one browser or load balancer connection can carry.
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    max_streams: u32,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(max_streams);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
    Ok(())
}
