//! 消息 — the messaging service: the taxpayer inbox (待办提醒 / 消息提示 with unread counts),
//! notifications created from other domains' events, and later 留言, 工单 and precision push.

pub mod api;
mod desk;
pub mod events;
pub mod inbox;
pub mod leave;
pub mod push;
pub mod tickets;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zhengna_platform::StartupError;
use zhengna_platform::db::{self, DbConfig};
use zhengna_platform::identity::IdentityConfig;
use zhengna_platform::kafka::{self, ConsumerOptions, KafkaConfig};
use zhengna_platform::main_support::ServiceConfig;
use zhengna_platform::server::{self, RunningServer, ServeOptions, ServerConfig};
use zhengna_platform::telemetry::TelemetryConfig;
use zhengna_proto::messaging::v1 as pb;

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
    /// Consumer group for domain events.
    pub consumer_group: String,
    pub tickets: tickets::TicketConfig,
    pub push: push::PushConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_port(7065, 9465),
            db: DbConfig::local("zhengna_messaging"),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            session: zhengna_platform::attachments::SessionUpstream::default(),
            consumer_group: "zhengna-messaging".into(),
            tickets: tickets::TicketConfig::default(),
            push: push::PushConfig::default(),
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
    consumer: JoinHandle<Result<(), StartupError>>,
    relay: JoinHandle<()>,
    escalation: JoinHandle<()>,
    sender: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = db::connect(&cfg.db, &MIGRATOR).await?;
        kafka::ensure_topics(
            &cfg.kafka,
            &[zhengna_proto::topics::APPOINTMENT, zhengna_proto::topics::MESSAGING, zhengna_proto::topics::ANSWER],
        )
        .await?;
        let consumer = tokio::spawn(kafka::run_consumer(
            cfg.kafka.clone(),
            ConsumerOptions {
                group: cfg.consumer_group.clone(),
                topics: vec![zhengna_proto::topics::APPOINTMENT.to_owned(), zhengna_proto::topics::ANSWER.to_owned()],
            },
            pool.clone(),
            events::EventHandler,
            shutdown.clone(),
        ));
        let relay = tokio::spawn(kafka::Relay::new(pool.clone(), &cfg.kafka)?.run(shutdown.clone()));
        let leaves = leave::LeaveMessages::new(pool.clone());
        let tickets = tickets::Tickets::new(pool.clone(), cfg.tickets.clone());
        let escalation = tokio::spawn(tickets::run_escalation(tickets.clone(), shutdown.clone()));
        let pushes = push::Pushes::new(pool.clone());
        let sender = tokio::spawn(push::run_sender(pushes.clone(), cfg.push.clone(), shutdown.clone()));
        let key = cfg.identity.key()?;
        let hub = zhengna_platform::db::ListenHub::start(&pool, inbox::CHANNEL, shutdown.clone()).await?;
        let linker = zhengna_platform::attachments::Linker::new(&cfg.session, key.clone())?;
        let routes = tonic::service::Routes::new(pb::inbox_service_server::InboxServiceServer::new(
            api::InboxApi::new(inbox::Inbox::new(pool), hub, shutdown.clone()),
        ))
        .add_service(pb::leave_message_service_server::LeaveMessageServiceServer::new(desk::LeaveApi::new(
            leaves.clone(),
            linker.clone(),
        )))
        .add_service(pb::leave_message_desk_service_server::LeaveMessageDeskServiceServer::new(
            desk::LeaveDeskApi::new(leaves, tickets.clone(), linker.clone()),
        ))
        .add_service(pb::ticket_desk_service_server::TicketDeskServiceServer::new(desk::TicketDeskApi::new(
            tickets, linker,
        )))
        .add_service(pb::push_admin_service_server::PushAdminServiceServer::new(desk::PushApi::new(pushes)));
        let names = vec![
            "zhengna.messaging.v1.InboxService",
            "zhengna.messaging.v1.LeaveMessageService",
            "zhengna.messaging.v1.LeaveMessageDeskService",
            "zhengna.messaging.v1.TicketDeskService",
            "zhengna.messaging.v1.PushAdminService",
        ];
        let server = server::serve(ServeOptions {
            service: "messaging",
            routes,
            unimplemented_topics: Vec::new(),
            health_names: names,
            key,
            config: cfg.server,
            shutdown: shutdown.clone(),
        })
        .await?;
        Ok(Self { server, consumer, relay, escalation, sender, shutdown })
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
        let _ = self.escalation.await;
        let _ = self.sender.await;
        match self.consumer.await {
            Ok(Err(e)) => tracing::error!(error = %e, "consumer failed"),
            Err(e) => tracing::error!(error = %e, "consumer task failed"),
            Ok(Ok(())) => {}
        }
        res
    }
}
