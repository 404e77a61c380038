//! 会话 — the session service: conversations, their ordered messages, live delivery with
//! resume (`Subscribe(after_seq)`), and the hand-off of taxpayer text to the answer bot.

mod api;
mod events;
mod hub;
mod lifecycle;
mod preferences;
mod store;
pub mod uploads;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use zhengna_platform::StartupError;
use zhengna_platform::db::{self, DbConfig};
use zhengna_platform::identity::IdentityConfig;
use zhengna_platform::main_support::ServiceConfig;
use zhengna_platform::server::{self, RunningServer, ServeOptions, ServerConfig};
use zhengna_platform::telemetry::TelemetryConfig;
use zhengna_proto::session::v1 as pb;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub db: DbConfig,
    pub telemetry: TelemetryConfig,
    pub identity: IdentityConfig,
    pub answer: UpstreamConfig,
    pub conversation: ConversationConfig,
    pub kafka: zhengna_platform::kafka::KafkaConfig,
    /// Consumer group for queue events.
    pub consumer_group: String,
    /// Attachment storage and the blob endpoint.
    pub storage: uploads::StorageConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamConfig {
    /// Base URL of the answer service, e.g. `http://127.0.0.1:7061`.
    pub url: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationConfig {
    /// Display name of the answering bot in transcripts.
    pub bot_name: String,
    /// Seconds between heartbeats on an idle Subscribe stream.
    pub heartbeat_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_port(7063, 9463),
            db: DbConfig::local("zhengna_session"),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            answer: UpstreamConfig::default(),
            conversation: ConversationConfig::default(),
            kafka: zhengna_platform::kafka::KafkaConfig::default(),
            consumer_group: "zhengna-session".into(),
            storage: uploads::StorageConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:7061".into(), timeout_ms: 5000 }
    }
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self { bot_name: "智能助手".into(), heartbeat_secs: 15 }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

pub struct App {
    server: RunningServer,
    blob_addr: SocketAddr,
    blob: tokio::task::JoinHandle<()>,
    consumer: tokio::task::JoinHandle<Result<(), StartupError>>,
    relay: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = db::connect(&cfg.db, &MIGRATOR).await?;
        let key = cfg.identity.key()?;
        let channel = zhengna_platform::grpc::channel(&cfg.answer.url, Duration::from_secs(3))
            .map_err(|e| StartupError::Config(format!("answer.url: {e}")))?;
        let listen = hub::ListenHub::start(&pool, hub::CHANNEL, shutdown.clone()).await?;
        let hub = hub::Hub::start(&listen, shutdown.clone());
        zhengna_platform::kafka::ensure_topics(
            &cfg.kafka,
            &[zhengna_proto::topics::QUEUE, zhengna_proto::topics::SESSION],
        )
        .await?;
        let relay = tokio::spawn(zhengna_platform::kafka::Relay::new(pool.clone(), &cfg.kafka)?.run(shutdown.clone()));
        let consumer = tokio::spawn(zhengna_platform::kafka::run_consumer(
            cfg.kafka.clone(),
            zhengna_platform::kafka::ConsumerOptions {
                group: cfg.consumer_group.clone(),
                topics: vec![zhengna_proto::topics::QUEUE.to_owned()],
            },
            pool.clone(),
            events::QueueEvents,
            shutdown.clone(),
        ));
        let objects = cfg.storage.open()?;
        let uploads = uploads::Uploads::new(pool.clone(), objects, key.clone(), cfg.storage.clone());
        let (blob_addr, blob) = uploads::blob::serve(uploads.clone(), cfg.storage.listen, shutdown.clone()).await?;
        tokio::spawn(sweep_forever(uploads.clone(), shutdown.clone()));
        let api = api::ConversationApi::new(
            store::Store::new(pool),
            hub,
            api::Bot {
                moderation: zhengna_proto::answer::v1::moderation_service_client::ModerationServiceClient::new(
                    channel.clone(),
                ),
                client: zhengna_proto::answer::v1::answer_service_client::AnswerServiceClient::new(channel),
                timeout: Duration::from_millis(cfg.answer.timeout_ms),
            },
            key.clone(),
            cfg.conversation.clone(),
            shutdown.clone(),
            uploads.clone(),
        );
        let routes =
            tonic::service::Routes::new(pb::conversation_service_server::ConversationServiceServer::new(api.clone()))
                .add_service(pb::agent_conversation_service_server::AgentConversationServiceServer::new(
                    api::AgentApi::new(api.clone()),
                ))
                .add_service(pb::attachment_link_service_server::AttachmentLinkServiceServer::new(api::LinkApi::new(
                    uploads,
                )));
        let server = server::serve(ServeOptions {
            service: "session",
            routes,
            health_names: vec![
                "zhengna.session.v1.ConversationService",
                "zhengna.session.v1.AgentConversationService",
                "zhengna.session.v1.AttachmentLinkService",
            ],
            key,
            unimplemented_topics: vec![
                ("zhengna.session.v1.ConversationService", "audio/video and remote assistance (spec §3.6–3.7)"),
                ("zhengna.session.v1.AgentConversationService", "audio/video and remote assistance (spec §3.6–3.7)"),
            ],
            config: cfg.server,
            shutdown: shutdown.clone(),
        })
        .await?;
        Ok(Self { server, blob_addr, blob, consumer, relay, shutdown })
    }

    /// The blob endpoint (uploads and downloads) the gateway forwards to.
    pub fn blob_addr(&self) -> SocketAddr {
        self.blob_addr
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
        let _ = self.consumer.await;
        let _ = self.blob.await;
        let _ = self.relay.await;
        res
    }
}

/// Every ten minutes, deletes uploads that were never completed.
async fn sweep_forever(uploads: uploads::Uploads, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => match uploads.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(uploads = n, "abandoned uploads deleted"),
                Err(e) => tracing::warn!(error = %e, "sweeping abandoned uploads failed"),
            },
        }
    }
}
