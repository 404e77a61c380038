//! 智能应答 — the answer service: the knowledge base and the bot's decision for each
//! question (answer, clarify, suggest or no answer) by the matching engine ([`engine`]).

mod admin;
mod api;
mod catalog;
mod clarify;
pub mod engine;
pub mod exchange;
mod favourites;
mod feedback;
pub mod harassment;
pub mod kb;
pub mod moderation;
mod moderation_admin;
pub mod normalize;
mod popular;

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
    pub kafka: zhengna_platform::kafka::KafkaConfig,
    /// Seconds between checks for KB changes (published or retired items) to re-index.
    pub refresh_secs: u64,
    /// Unresolved rounds in a row after which the bot proposes a human (spec §1.4).
    pub unresolved_rounds: i32,
    /// Seconds between recomputations of 热词 from the ask log.
    pub hot_words_secs: u64,
    /// The anti-harassment ladder.
    pub moderation: harassment::HarassmentConfig,
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
            kafka: zhengna_platform::kafka::KafkaConfig::default(),
            refresh_secs: 3,
            unresolved_rounds: 3,
            hot_words_secs: 600,
            moderation: harassment::HarassmentConfig::default(),
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
    relay: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

/// The engine in use; replaced whole when the KB changes.
pub type SharedEngine = std::sync::Arc<std::sync::RwLock<std::sync::Arc<engine::Engine>>>;

type KbState = (i64, Option<chrono::DateTime<chrono::Utc>>);

/// A fingerprint of the KB, its topics and its clarification trees: rebuild the index and
/// reload the catalog when it changes.
async fn kb_state(pool: &sqlx::PgPool) -> Result<KbState, sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM kb_items WHERE status = 'published')
                + (SELECT count(*) FROM topics) + (SELECT count(*) FROM clarification_trees),
                GREATEST((SELECT max(updated_at) FROM kb_items), (SELECT max(updated_at) FROM topics),
                         (SELECT max(updated_at) FROM clarification_trees))",
    )
    .fetch_one(pool)
    .await
}

async fn build_engine(kb: &kb::Kb) -> Result<engine::Engine, StartupError> {
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
    Ok(engine)
}

/// Recomputes 热词 from the ask log now and every `every` (ten minutes by default).
async fn hot_words_forever(
    popular: popular::Popular,
    shared: SharedEngine,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    loop {
        let engine = match shared.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        match popular.recompute(&engine).await {
            Ok(n) => tracing::debug!(words = n, "hot words recomputed"),
            Err(e) => tracing::warn!(error = %e, "recomputing hot words failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Rebuilds the word lists when supervisors change them (checked every `every`); every
/// minute adds the count of texts checked to the day's statistics and forgets
/// harassment-detection inputs older than any window.
async fn moderation_upkeep_forever(
    checkpoint: api::Checkpoint,
    pool: sqlx::PgPool,
    lexicon: (i64, Option<chrono::DateTime<chrono::Utc>>),
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut lexicon = Some(lexicon);
    let mut flushed = std::time::Instant::now();
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        if stop || flushed.elapsed() >= std::time::Duration::from_secs(60) {
            if let Err(e) = checkpoint.checks.flush(&pool).await {
                tracing::warn!(error = %e, "saving moderation counts failed");
            }
            if let Err(e) = checkpoint.guard.prune().await {
                tracing::warn!(error = %e, "pruning moderation inputs failed");
            }
            flushed = std::time::Instant::now();
        }
        if stop {
            return;
        }
        let Ok(now) = moderation_admin::lexicon_state(&pool).await else { continue };
        if lexicon.as_ref() == Some(&now) {
            continue;
        }
        let overrides = match moderation_admin::lexicon_overrides(&pool).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "loading sensitive-word changes failed");
                continue;
            }
        };
        match tokio::task::spawn_blocking(move || moderation::Moderator::with_overrides(&overrides)).await {
            Ok(m) => {
                if let Ok(mut guard) = checkpoint.moderator.write() {
                    *guard = std::sync::Arc::new(m);
                }
                lexicon = Some(now);
                tracing::info!("sensitive-word lists rebuilt");
            }
            Err(e) => tracing::warn!(error = %e, "rebuilding the sensitive-word lists failed"),
        }
    }
}

/// Re-indexes when items are published or retired (on any replica).
async fn refresh_forever(
    kb: kb::Kb,
    pool: sqlx::PgPool,
    shared: SharedEngine,
    catalog: catalog::SharedCatalog,
    mut state: KbState,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    // Popularity (autocomplete order) comes from the ask log: refresh it now and then even
    // when the KB does not change.
    let mut built = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = match kb_state(&pool).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "checking the KB for changes failed");
                continue;
            }
        };
        if now == state && built.elapsed() < std::time::Duration::from_secs(600) {
            continue;
        }
        let loaded = match catalog::load(&pool).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reloading topics and trees failed; keeping the previous ones");
                continue;
            }
        };
        match build_engine(&kb).await {
            Ok(e) => {
                if let Ok(mut guard) = shared.write() {
                    *guard = std::sync::Arc::new(e);
                }
                if let Ok(mut guard) = catalog.write() {
                    *guard = std::sync::Arc::new(loaded);
                }
                state = now;
                built = std::time::Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "re-indexing failed; answering from the previous index"),
        }
    }
}

impl App {
    pub async fn build(cfg: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = db::connect(&cfg.db, &MIGRATOR).await?;
        zhengna_platform::kafka::ensure_topics(&cfg.kafka, &[zhengna_proto::topics::ANSWER]).await?;
        let relay = tokio::spawn(zhengna_platform::kafka::Relay::new(pool.clone(), &cfg.kafka)?.run(shutdown.clone()));
        let kb = kb::Kb::new(pool.clone());
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
        catalog::seed_if_empty(&pool).await?;
        let shared_catalog: catalog::SharedCatalog = std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(
            catalog::load(&pool).await.map_err(|e| StartupError::Other(format!("loading topics and trees: {e}")))?,
        )));
        let state = kb_state(&pool).await?;
        let shared: SharedEngine =
            std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(build_engine(&kb).await?)));
        tokio::spawn(refresh_forever(
            kb.clone(),
            pool.clone(),
            shared.clone(),
            shared_catalog.clone(),
            state,
            std::time::Duration::from_secs(cfg.refresh_secs.max(1)),
            shutdown.clone(),
        ));
        // The shipped word lists with the supervisors' changes.
        let lexicon = moderation_admin::lexicon_state(&pool).await.map_err(|e| StartupError::Other(e.to_string()))?;
        let overrides =
            moderation_admin::lexicon_overrides(&pool).await.map_err(|e| StartupError::Other(e.to_string()))?;
        let moderator = std::sync::Arc::new(
            tokio::task::spawn_blocking(move || moderation::Moderator::with_overrides(&overrides))
                .await
                .map_err(|e| StartupError::Other(format!("loading moderation lists: {e}")))?,
        );
        let checkpoint = api::Checkpoint {
            moderator: std::sync::Arc::new(std::sync::RwLock::new(moderator)),
            guard: harassment::Guard::new(pool.clone(), cfg.moderation.clone()),
            checks: moderation_admin::CheckCounter::default(),
        };
        tokio::spawn(moderation_upkeep_forever(
            checkpoint.clone(),
            pool.clone(),
            lexicon,
            std::time::Duration::from_secs(cfg.refresh_secs.max(1)),
            shutdown.clone(),
        ));
        tokio::spawn(hot_words_forever(
            popular::Popular::new(pool.clone()),
            shared.clone(),
            std::time::Duration::from_secs(cfg.hot_words_secs.max(1)),
            shutdown.clone(),
        ));
        let key = cfg.identity.key()?;
        let routes = tonic::service::Routes::new(pb::answer_service_server::AnswerServiceServer::new(
            api::AnswerApi::new(pool.clone(), shared, checkpoint.clone(), shared_catalog, cfg.unresolved_rounds.max(1)),
        ))
        .add_service(pb::knowledge_admin_service_server::KnowledgeAdminServiceServer::new(admin::AdminApi::new(
            pool.clone(),
        )))
        .add_service(pb::moderation_service_server::ModerationServiceServer::new(api::ModerationApi::new(
            checkpoint.clone(),
            kb,
        )))
        .add_service(pb::moderation_admin_service_server::ModerationAdminServiceServer::new(
            moderation_admin::ModerationAdminApi::new(pool, checkpoint.clone()),
        ))
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
        Ok(Self { server, relay, shutdown })
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
        res
    }
}
