//! 人工排队 — the queue service: the line for human service per tax office (routed up the
//! office hierarchy to the nearest staffed office), live position and estimated wait,
//! cancel while waiting, agent presence and capacity, and claims that never exceed it.
//! Skill groups route by topic within an office, with automatic (longest-idle agent) or
//! manual assignment; business hours (inherited down the hierarchy) close the line, and
//! entries past their maximum wait are dropped as abandoned.

mod api;
mod events;
pub mod groups;
pub mod hours;
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
    /// Maximum wait in the office-wide line (offices without skill groups), in minutes;
    /// 0 = no limit. Groups set their own.
    pub default_max_wait_minutes: i32,
    /// How often auto-assignment runs without a wake-up (seconds).
    pub assign_secs: u64,
    /// How often abandoned entries and closed offices are swept (seconds).
    pub sweep_secs: u64,
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
            default_max_wait_minutes: 60,
            assign_secs: 2,
            sweep_secs: 10,
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

const TOPIC: &str = "the queue and human interaction (issue 4)";

/// Background work: auto-assignment whenever a line moves (and every `assign_secs`), and
/// the sweep of abandoned entries and of lines whose business hours closed.
async fn background(queue: store::Queue, hub: db::ListenHub, cfg: Config, shutdown: CancellationToken) {
    use std::time::Duration;
    let mut wakes = hub.subscribe();
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        let idle = Duration::from_secs(cfg.assign_secs.max(1));
        if let db::Waited::Done = db::wait_for(&mut wakes, |_| true, idle, &shutdown).await {
            if shutdown.is_cancelled() {
                return;
            }
            // The listener is gone (reconnecting): fall back to the timer.
            tokio::time::sleep(idle).await;
        }
        match queue.auto_assign(200).await {
            Ok(n) if n > 0 => tracing::debug!(assigned = n, "auto-assignment"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "auto-assignment failed"),
        }
        if last_sweep.elapsed() >= Duration::from_secs(cfg.sweep_secs.max(1)) {
            last_sweep = tokio::time::Instant::now();
            let mut closed = Vec::new();
            match queue.offices_waiting().await {
                Ok(offices) => {
                    for office in offices {
                        match groups::business_hours(queue.pool(), &office, chrono::Utc::now()).await {
                            Ok(h) if !h.open_now => closed.push(office),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, %office, "business hours"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing waiting offices"),
            }
            match queue.expire_overdue(cfg.default_max_wait_minutes, &closed).await {
                Ok(n) if n > 0 => tracing::info!(expired = n, "queue entries abandoned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "abandonment sweep failed"),
            }
        }
    }
}

pub struct App {
    server: RunningServer,
    relay: tokio::task::JoinHandle<()>,
    consumer: tokio::task::JoinHandle<Result<(), StartupError>>,
    worker: tokio::task::JoinHandle<()>,
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
        let queue = store::Queue::new(pool.clone());
        let desk_hub = hub.clone();
        let worker = tokio::spawn(background(queue.clone(), hub.clone(), cfg.clone(), shutdown.clone()));
        let key = cfg.identity.key()?;
        let routes = tonic::service::Routes::new(pb::queue_service_server::QueueServiceServer::new(
            api::QueueApi::new(queue.clone(), hub, shutdown.clone()),
        ))
        .add_service(pb::agent_desk_service_server::AgentDeskServiceServer::new(api::DeskApi::new(
            queue,
            desk_hub,
            shutdown.clone(),
        )))
        .add_service(pb::queue_admin_service_server::QueueAdminServiceServer::new(groups::AdminApi::new(pool)));
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
        Ok(Self { server, relay, consumer, worker, shutdown })
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
        let _ = self.worker.await;
        res
    }
}
