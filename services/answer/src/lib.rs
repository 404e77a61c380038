//! 智能应答 — the answer service: the knowledge base and the bot's decision for each
//! question (answer, clarify, suggest or no answer) by the matching engine ([`engine`]).

mod api;
pub mod engine;
pub mod kb;
pub mod normalize;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use zhengna_platform::StartupError;
use zhengna_platform::db::{self, DbConfig};
use zhengna_platform::identity::IdentityConfig;
use zhengna_platform::main_support::ServiceConfig;
use zhengna_platform::server::{self, RunningServer, ServeOptions, ServerConfig};
use zhengna_platform::telemetry::TelemetryConfig;
use zhengna_proto::answer::v1 as pb;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub db: DbConfig,
    pub telemetry: TelemetryConfig,
    pub identity: IdentityConfig,
    pub seed: SeedConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedConfig {
    /// Standard-question catalog (JSONL) imported at start-up when the KB is empty.
    pub catalog_path: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_port(7061, 9461),
            db: DbConfig::local("zhengna_answer"),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            seed: SeedConfig::default(),
        }
    }
}

impl ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// The catalog shipped in this repository (`services/answer/seed`).
pub fn bundled_catalog() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seed/standard-questions.jsonl")
}

const TOPIC: &str = "intelligent answering (issue 3)";

pub struct App {
    server: RunningServer,
    shutdown: CancellationToken,
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = db::connect(&cfg.db, &MIGRATOR).await?;
        let kb = kb::Kb::new(pool);
        if let Some(path) = &cfg.seed.catalog_path {
            let imported = kb.seed_if_empty(path).await?;
            if imported > 0 {
                tracing::info!(imported, path = %path.display(), "seeded knowledge base from catalog");
            }
            // Drafted answers live beside the catalog (`seed/kb`).
            let drafts = path.parent().map(|p| p.join("kb")).unwrap_or_default();
            let applied = kb.apply_drafts(&drafts).await?;
            if applied > 0 {
                tracing::info!(applied, dir = %drafts.display(), "applied drafted answers");
            }
        }
        let items = kb.engine_items().await.map_err(|e| StartupError::Other(format!("loading the KB: {e}")))?;
        let started = std::time::Instant::now();
        let engine = tokio::task::spawn_blocking(move || engine::Engine::build(items, &engine::Dicts::builtin()))
            .await
            .map_err(|e| StartupError::Other(format!("building the answer index: {e}")))?;
        tracing::info!(
            items = engine.items().len(),
            variants = engine.variants(),
            ms = started.elapsed().as_millis() as u64,
            "answer index built"
        );
        let key = cfg.identity.key()?;
        let routes = tonic::service::Routes::new(pb::answer_service_server::AnswerServiceServer::new(
            api::AnswerApi::new(kb, std::sync::Arc::new(engine)),
        ))
        .add_service(pb::knowledge_admin_service_server::KnowledgeAdminServiceServer::new(api::Later))
        .add_service(pb::moderation_service_server::ModerationServiceServer::new(api::Later))
        .add_service(pb::moderation_admin_service_server::ModerationAdminServiceServer::new(api::Later))
        .add_service(pb::speech_service_server::SpeechServiceServer::new(api::Later));
        let names = vec![
            "zhengna.answer.v1.AnswerService",
            "zhengna.answer.v1.KnowledgeAdminService",
            "zhengna.answer.v1.ModerationService",
            "zhengna.answer.v1.ModerationAdminService",
            "zhengna.answer.v1.SpeechService",
        ];
        let server = server::serve(ServeOptions {
            service: "answer",
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
