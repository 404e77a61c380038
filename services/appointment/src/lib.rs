//! 预约 — the appointment service: taxpayer bookings (我的发起) and bureau invitations
//! (税局邀请) with the operation guide's two state machines, per-unit slots and capacity,
//! the :15/:45 missed/failed check, reminders, queries, and an event for every change.

mod api;
pub mod booking;
pub mod catalog;
pub mod scheduler;
pub mod slots;
pub mod state;
pub mod store;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zhengna_platform::StartupError;
use zhengna_platform::db::{self, DbConfig};
use zhengna_platform::identity::IdentityConfig;
use zhengna_platform::kafka::{self, KafkaConfig, Relay};
use zhengna_platform::main_support::ServiceConfig;
use zhengna_platform::server::{self, RunningServer, ServeOptions, ServerConfig};
use zhengna_platform::telemetry::TelemetryConfig;
use zhengna_proto::appointment::v1 as pb;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub db: DbConfig,
    pub kafka: KafkaConfig,
    pub telemetry: TelemetryConfig,
    pub identity: IdentityConfig,
    /// The session service, which holds uploads (附件材料).
    pub session: zhengna_platform::attachments::SessionUpstream,
    pub scheduler: scheduler::SchedulerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_port(7064, 9464),
            db: DbConfig::local("zhengna_appointment"),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            session: zhengna_platform::attachments::SessionUpstream::default(),
            scheduler: scheduler::SchedulerConfig::default(),
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

pub struct App {
    server: RunningServer,
    relay: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = db::connect(&cfg.db, &MIGRATOR).await?;
        kafka::ensure_topics(&cfg.kafka, &[zhengna_proto::topics::APPOINTMENT]).await?;
        let relay = tokio::spawn(Relay::new(pool.clone(), &cfg.kafka)?.run(shutdown.clone()));
        let store = store::Appointments::new(pool);
        let scheduler = tokio::spawn(scheduler::run(store.clone(), cfg.scheduler.clone(), shutdown.clone()));
        let key = cfg.identity.key()?;
        let linker = zhengna_platform::attachments::Linker::new(&cfg.session, key.clone())?;
        let routes = tonic::service::Routes::new(pb::appointment_service_server::AppointmentServiceServer::new(
            api::AppointmentApi::new(store.clone(), linker.clone()),
        ))
        .add_service(pb::appointment_desk_service_server::AppointmentDeskServiceServer::new(api::DeskApi::new(
            store.clone(),
            linker,
        )))
        .add_service(pb::appointment_admin_service_server::AppointmentAdminServiceServer::new(
            api::AdminApi::new(store),
        ));
        let names = vec![
            "zhengna.appointment.v1.AppointmentService",
            "zhengna.appointment.v1.AppointmentDeskService",
            "zhengna.appointment.v1.AppointmentAdminService",
        ];
        let server = server::serve(ServeOptions {
            service: "appointment",
            routes,
            unimplemented_topics: Vec::new(),
            health_names: names,
            key,
            config: cfg.server,
            shutdown: shutdown.clone(),
        })
        .await?;
        Ok(Self { server, relay, scheduler, shutdown })
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
        let _ = self.scheduler.await;
        res
    }
}
