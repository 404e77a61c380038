//! Server scaffolding: listeners, tonic-health, tonic-reflection, Prometheus `/metrics`,
//! signals and graceful shutdown (signal → NOT_SERVING → drain under a grace timeout).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::StartupError;
use crate::grpc::ServerLayer;
use crate::identity::IdentityKey;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// gRPC listen address; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; port 0 picks a free port.
    pub metrics_listen: SocketAddr,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl ServerConfig {
    pub fn with_port(port: u16, metrics_port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::with_port(0, 0)
    }
}

/// A running gRPC server plus its metrics endpoint.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    metrics: JoinHandle<()>,
    grace: Duration,
}

impl RunningServer {
    /// Waits for the server to drain after `shutdown` fires, bounded by the grace period.
    pub async fn stopped(self) -> Result<(), StartupError> {
        let res = match tokio::time::timeout(self.grace, self.grpc).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(StartupError::Other(format!("grpc server: {e}"))),
            Ok(Err(e)) => Err(StartupError::Other(format!("grpc server task: {e}"))),
            Err(_) => {
                tracing::warn!("grace period elapsed with calls in flight; stopping anyway");
                Ok(())
            }
        };
        self.metrics.abort();
        res
    }
}

/// Everything a service hands over to be served.
pub struct ServeOptions {
    pub service: &'static str,
    pub routes: Routes,
    /// Fully qualified gRPC service names reported by health checks.
    pub health_names: Vec<&'static str>,
    pub key: IdentityKey,
    /// gRPC service name → topic (issue) that will implement its stubbed methods.
    pub unimplemented_topics: Vec<(&'static str, &'static str)>,
    pub config: ServerConfig,
    pub shutdown: CancellationToken,
}

/// Binds and starts the gRPC server (with health + reflection) and the metrics endpoint.
pub async fn serve(opts: ServeOptions) -> Result<RunningServer, StartupError> {
    let listener = TcpListener::bind(opts.config.listen).await?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(opts.config.metrics_listen).await?;
    let metrics_addr = metrics_listener.local_addr()?;

    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", ServingStatus::Serving).await;
    for name in &opts.health_names {
        reporter.set_service_status(*name, ServingStatus::Serving).await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(zhengna_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartupError::Other(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(zhengna_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| StartupError::Other(format!("reflection: {e}")))?;

    let routes = opts.routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);

    let shutdown = opts.shutdown.clone();
    let names = opts.health_names.clone();
    let drain = async move {
        shutdown.cancelled().await;
        reporter.set_service_status("", ServingStatus::NotServing).await;
        for name in names {
            reporter.set_service_status(name, ServingStatus::NotServing).await;
        }
        tracing::info!("shutting down: health set to NOT_SERVING, draining calls");
    };
    let service = opts.service;
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(ServerLayer::new(service, opts.key, opts.unimplemented_topics))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // Small gRPC frames must not wait for Nagle's algorithm (it added ~40 ms per
                // hop against delayed ACKs); the listener stream does not set it by itself.
                tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |conn| {
                    if let Ok(c) = &conn {
                        let _ = c.set_nodelay(true);
                    }
                    conn
                }),
                drain,
            ),
    );
    let metrics = tokio::spawn(serve_metrics(metrics_listener, metrics_handle(), opts.shutdown.clone()));
    tracing::info!(%addr, %metrics_addr, service, "serving");
    Ok(RunningServer { addr, metrics_addr, grpc, metrics, grace: Duration::from_secs(opts.config.shutdown_grace_secs) })
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding several services).
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(move || std::future::ready(handle.render())))
        .route("/healthz", axum::routing::get(|| std::future::ready("ok")));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await {
        tracing::warn!(error = %e, "metrics endpoint stopped");
    }
}

/// A token cancelled on the first SIGINT/SIGTERM; a second signal exits at once.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received, shutting down (signal again to exit now)");
        t.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal, exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
