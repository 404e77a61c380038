//! 人工排队 — the queue service: skill groups by tax office, agent presence and capacity,
//! queue entries with position and ETA, assignment and transfer. This first cut runs the
//! service with its schema, health and API; the queue itself is the conversations issue.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use zhengna_platform::StartupError;
use zhengna_platform::db::{self, DbConfig};
use zhengna_platform::identity::IdentityConfig;
use zhengna_platform::main_support::ServiceConfig;
use zhengna_platform::server::{self, RunningServer, ServeOptions, ServerConfig};
use zhengna_platform::telemetry::TelemetryConfig;
use zhengna_proto::queue::v1 as pb;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub db: DbConfig,
    pub telemetry: TelemetryConfig,
    pub identity: IdentityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_port(7062, 9462),
            db: DbConfig::local("zhengna_queue"),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

const TOPIC: &str = "the queue and human interaction (issue 4)";

/// Every method answers UNIMPLEMENTED naming the issue that delivers it.
struct Later;

#[tonic::async_trait]
impl pb::queue_service_server::QueueService for Later {}
#[tonic::async_trait]
impl pb::agent_desk_service_server::AgentDeskService for Later {}
#[tonic::async_trait]
impl pb::queue_admin_service_server::QueueAdminService for Later {}

pub struct App {
    server: RunningServer,
    shutdown: CancellationToken,
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let _pool = db::connect(&cfg.db, &MIGRATOR).await?;
        let key = cfg.identity.key()?;
        let routes = tonic::service::Routes::new(pb::queue_service_server::QueueServiceServer::new(Later))
            .add_service(pb::agent_desk_service_server::AgentDeskServiceServer::new(Later))
            .add_service(pb::queue_admin_service_server::QueueAdminServiceServer::new(Later));
        let names = vec![
            "zhengna.queue.v1.QueueService",
            "zhengna.queue.v1.AgentDeskService",
            "zhengna.queue.v1.QueueAdminService",
        ];
        let server = server::serve(ServeOptions {
            service: "queue",
            routes,
            unimplemented_topics: names.iter().map(|n| (*n, TOPIC)).collect(),
            health_names: names,
            key,
            config: cfg.server,
            shutdown: shutdown.clone(),
        })
        .await?;
        Ok(Self { server, shutdown })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.server.metrics_addr
    }

    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.shutdown.cancelled().await;
        self.server.stopped().await
    }
}
