//! 人工排队 — the queue service: the line for human service per tax office (routed up the
//! office hierarchy to the nearest staffed office), live position and estimated wait,
//! cancel while waiting, agent presence and capacity, and claims that never exceed it.
//! Skill groups, business hours, transfer and auto-assignment come with the rest of issue 4.

mod api;
mod events;
pub mod store;

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
    pub kafka: zhengna_platform::kafka::KafkaConfig,
    /// Consumer group for session events.
    pub consumer_group: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_port(7062, 9462),
            db: DbConfig::local("zhengna_queue"),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            kafka: zhengna_platform::kafka::KafkaConfig::default(),
            consumer_group: "zhengna-queue".into(),
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

const TOPIC: &str = "the queue and human interaction (issue 4)";

/// Skill-group administration comes with the rest of issue 4: UNIMPLEMENTED naming it.
struct Later;

#[tonic::async_trait]
impl pb::queue_admin_service_server::QueueAdminService for Later {}

pub struct App {
    server: RunningServer,
    relay: tokio::task::JoinHandle<()>,
    consumer: tokio::task::JoinHandle<Result<(), StartupError>>,
    shutdown: CancellationToken,
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = db::connect(&cfg.db, &MIGRATOR).await?;
        zhengna_platform::kafka::ensure_topics(
            &cfg.kafka,
            &[zhengna_proto::topics::QUEUE, zhengna_proto::topics::SESSION],
        )
        .await?;
        let consumer = tokio::spawn(zhengna_platform::kafka::run_consumer(
            cfg.kafka.clone(),
            zhengna_platform::kafka::ConsumerOptions {
                group: cfg.consumer_group.clone(),
                topics: vec![zhengna_proto::topics::SESSION.to_owned()],
            },
            pool.clone(),
            events::SessionEvents,
            shutdown.clone(),
        ));
        let relay = tokio::spawn(zhengna_platform::kafka::Relay::new(pool.clone(), &cfg.kafka)?.run(shutdown.clone()));
        let hub = db::ListenHub::start(&pool, store::CHANNEL, shutdown.clone()).await?;
        let queue = store::Queue::new(pool);
        let desk_hub = hub.clone();
        let key = cfg.identity.key()?;
        let routes = tonic::service::Routes::new(pb::queue_service_server::QueueServiceServer::new(
            api::QueueApi::new(queue.clone(), hub, shutdown.clone()),
        ))
        .add_service(pb::agent_desk_service_server::AgentDeskServiceServer::new(api::DeskApi::new(
            queue,
            desk_hub,
            shutdown.clone(),
        )))
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
        Ok(Self { server, relay, consumer, shutdown })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.server.metrics_addr
    }

    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.shutdown.cancelled().await;
        let res = self.server.stopped().await;
        let _ = self.relay.await;
        let _ = self.consumer.await;
        res
    }
}
