//! The whole platform in one process for tests: every service and the gateway on port 0,
//! each with a fresh database, a private tansu broker, a test JWT issuer and a random
//! internal identity key. Production code paths only: the gateway checks tokens against a
//! JWKS file exactly as it would against the IdP's.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use zhengna_gateway::auth::{AuthConfig, CallerKind, IssuerConfig, TokenClaims};
use zhengna_gateway::dev::{DemoIdentity, Minter};
use zhengna_platform::StartupError;
use zhengna_platform::identity::IdentityKey;
use zhengna_platform::server::ServerConfig;
use zhengna_test_util::{Broker, fresh_db, identity};

pub const TAXPAYER_ISSUER: &str = "https://idp.etax.test";
pub const STAFF_ISSUER: &str = "https://idp.internal.test";

pub struct Stack {
    pub gateway: SocketAddr,
    pub answer: SocketAddr,
    pub queue: SocketAddr,
    pub session: SocketAddr,
    pub appointment: SocketAddr,
    pub messaging: SocketAddr,
    /// Prometheus endpoint of the session service.
    pub session_metrics: SocketAddr,
    pub key: IdentityKey,
    pub minter: Minter,
    pub broker: Broker,
    pub messaging_db: String,
    /// Database URL of the answer service.
    pub answer_db: String,
    databases: Vec<String>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<Result<(), StartupError>>>,
    _jwks_dir: TempDir,
    pub uploads_dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn local() -> ServerConfig {
    ServerConfig { shutdown_grace_secs: 2, ..ServerConfig::with_port(0, 0) }
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the stack after letting `adjust` change the gateway's configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut zhengna_gateway::Config)) -> Self {
        let shutdown = CancellationToken::new();
        let (id_cfg, key) = identity();
        let broker = Broker::start();
        let kafka = broker.kafka_config();
        let mut tasks = Vec::new();

        let dbs: Vec<_> = ["answer", "queue", "session", "appointment", "messaging"].map(fresh_db).into();
        let databases = dbs.iter().map(|d| d.url.expose().rsplit('/').next().unwrap_or_default().to_owned()).collect();
        let [answer_db, queue_db, session_db, appointment_db, messaging_db]: [_; 5] =
            dbs.try_into().expect("five databases");
        let answer_url = answer_db.url.expose().to_owned();
        let answer = zhengna_answer::App::build(
            zhengna_answer::Config {
                server: local(),
                db: answer_db,
                identity: id_cfg.clone(),
                seed: zhengna_answer::SeedConfig { catalog_path: Some(zhengna_answer::bundled_catalog()) },
                kafka: kafka.clone(),
                refresh_secs: 1,
                hot_words_secs: 1,
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("answer starts");
        let answer_addr = answer.addr();
        tasks.push(tokio::spawn(answer.run_until_stopped()));

        let queue = zhengna_queue::App::build(
            zhengna_queue::Config {
                server: local(),
                db: queue_db,
                identity: id_cfg.clone(),
                kafka: kafka.clone(),
                consumer_group: format!("zhengna-queue-{}", uuid::Uuid::new_v4().simple()),
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("queue starts");
        let queue_addr = queue.addr();
        tasks.push(tokio::spawn(queue.run_until_stopped()));

        let uploads_dir =
            TempDir(std::env::temp_dir().join(format!("zhengna-uploads-{}", uuid::Uuid::new_v4().simple())));
        let session = zhengna_session::App::build(
            zhengna_session::Config {
                server: local(),
                storage: zhengna_session::uploads::StorageConfig {
                    local_dir: uploads_dir.0.clone(),
                    listen: ([127, 0, 0, 1], 0).into(),
                    ..Default::default()
                },
                db: session_db,
                identity: id_cfg.clone(),
                answer: zhengna_session::UpstreamConfig { url: format!("http://{answer_addr}"), timeout_ms: 5000 },
                kafka: kafka.clone(),
                consumer_group: format!("zhengna-session-{}", uuid::Uuid::new_v4().simple()),
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("session starts");
        let session_addr = session.addr();
        let session_metrics = session.metrics_addr();
        let session_blob = session.blob_addr();
        tasks.push(tokio::spawn(session.run_until_stopped()));

        let appointment = zhengna_appointment::App::build(
            zhengna_appointment::Config {
                server: local(),
                db: appointment_db,
                kafka: kafka.clone(),
                identity: id_cfg.clone(),
                session: zhengna_platform::attachments::SessionUpstream {
                    url: format!("http://{session_addr}"),
                    timeout_ms: 5000,
                },
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("appointment starts");
        let appointment_addr = appointment.addr();
        tasks.push(tokio::spawn(appointment.run_until_stopped()));

        let messaging_url = messaging_db.url.expose().to_owned();
        let messaging = zhengna_messaging::App::build(
            zhengna_messaging::Config {
                server: local(),
                db: messaging_db,
                kafka: kafka.clone(),
                identity: id_cfg.clone(),
                session: zhengna_platform::attachments::SessionUpstream {
                    url: format!("http://{session_addr}"),
                    timeout_ms: 5000,
                },
                consumer_group: format!("zhengna-messaging-{}", uuid::Uuid::new_v4().simple()),
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("messaging starts");
        let messaging_addr = messaging.addr();
        tasks.push(tokio::spawn(messaging.run_until_stopped()));

        // The test IdP: one key, published as a JWKS file the gateway reads.
        let minter = Minter::generate("test-key-1").expect("key");
        let dir = std::env::temp_dir().join(format!("zhengna-jwks-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let jwks_path = dir.join("jwks.json");
        std::fs::write(&jwks_path, minter.jwks_json()).expect("write jwks");
        let issuer = |issuer: &str, kind| IssuerConfig {
            issuer: issuer.into(),
            audience: "zhengna".into(),
            kind,
            jwks_path: Some(jwks_path.clone()),
            jwks_url: None,
        };
        let mut gw_cfg = zhengna_gateway::Config {
            listen: ([127, 0, 0, 1], 0).into(),
            metrics_listen: ([127, 0, 0, 1], 0).into(),
            identity: id_cfg,
            auth: AuthConfig {
                issuers: vec![issuer(TAXPAYER_ISSUER, CallerKind::Taxpayer), issuer(STAFF_ISSUER, CallerKind::Agent)],
                dev_issuer: false,
                ..Default::default()
            },
            backends: [
                ("zhengna.answer.v1", answer_addr),
                ("zhengna.queue.v1", queue_addr),
                ("zhengna.session.v1", session_addr),
                ("zhengna.appointment.v1", appointment_addr),
                ("zhengna.messaging.v1", messaging_addr),
            ]
            .into_iter()
            .map(|(k, a)| (k.to_owned(), format!("http://{a}")))
            .collect(),
            blob_backend: format!("http://{session_blob}"),
            web_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/static"),
            // Tests poll through the gateway; the limit has its own test.
            rate_limit: zhengna_gateway::limits::RateLimitConfig { per_second: 0.0, burst: 0.0 },
            ..Default::default()
        };
        adjust(&mut gw_cfg);
        let gateway = zhengna_gateway::App::build(gw_cfg, shutdown.clone()).await.expect("gateway starts");
        let gateway_addr = gateway.addr();
        tasks.push(tokio::spawn(gateway.run_until_stopped()));

        Self {
            gateway: gateway_addr,
            answer: answer_addr,
            queue: queue_addr,
            session: session_addr,
            appointment: appointment_addr,
            messaging: messaging_addr,
            session_metrics,
            key,
            minter,
            broker,
            messaging_db: messaging_url,
            answer_db: answer_url,
            databases,
            shutdown,
            tasks,
            _jwks_dir: TempDir(dir),
            uploads_dir,
        }
    }

    /// Claims the test IdP would issue for a demo identity.
    pub fn claims(&self, who: &str) -> TokenClaims {
        let d = DemoIdentity::find(who).unwrap_or_else(|| panic!("no demo identity {who}"));
        let mut c = d.claims(chrono::Utc::now().timestamp(), 3600);
        c.iss = match d.kind {
            CallerKind::Taxpayer => TAXPAYER_ISSUER,
            CallerKind::Agent => STAFF_ISSUER,
        }
        .into();
        c.aud = Some("zhengna".into());
        c
    }

    /// A valid bearer token for a demo identity.
    pub fn token(&self, who: &str) -> String {
        self.minter.mint(&self.claims(who)).expect("mint")
    }

    /// A plain gRPC (HTTP/2) channel to the gateway.
    pub async fn gateway_channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.gateway)).expect("url").connect().await.expect("connect gateway")
    }

    /// Stops every service and drops the test's databases.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        zhengna_test_util::drop_databases(&self.databases).await;
    }
}

/// A request carrying `Authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    req
}
