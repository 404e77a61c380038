//! Helpers for service and integration tests: fresh PostgreSQL databases, random identity
//! keys, a real Kafka-protocol broker (tansu) started on demand, and span capture for
//! asserting trace propagation. Nothing here imitates PostgreSQL or Kafka.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use rand::Rng;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use zhengna_platform::config::Secret;
use zhengna_platform::db::DbConfig;
use zhengna_platform::identity::{IdentityConfig, IdentityKey};
use zhengna_platform::kafka::KafkaConfig;

/// `ZHENGNA_TEST_PG` or the local trust-auth server.
pub fn pg_base() -> String {
    std::env::var("ZHENGNA_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database config pointing at a brand-new database (created on first connect).
pub fn fresh_db(prefix: &str) -> DbConfig {
    let name = format!("zt_{prefix}_{}", uuid::Uuid::new_v4().simple());
    DbConfig { url: Secret::new(format!("{}/{}", pg_base(), &name[..name.len().min(60)])), max_connections: 5, create_if_missing: true }
}

/// A random identity key shared by a test's gateway and services.
pub fn identity() -> (IdentityConfig, IdentityKey) {
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let cfg = IdentityConfig { key: Secret::new(hex) };
    let key = cfg.key().expect("non-empty key");
    (cfg, key)
}

/// The `tansu` binary: `TANSU_BIN`, then `~/.zhengna-tools/bin/tansu`, then `PATH`.
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cached = PathBuf::from(home).join(".zhengna-tools/bin/tansu");
    if cached.exists() { cached } else { PathBuf::from("tansu") }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A private tansu broker process on its own port, stopped on drop. Storage is in memory,
/// so a restart starts empty (services recreate their topics; consumers dedupe).
pub struct Broker {
    port: u16,
    storage: String,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Self {
        Self::start_with_storage("memory://tansu/".into())
    }

    /// Starts with PostgreSQL storage in a fresh database, so data survives restarts.
    pub fn start_persistent() -> Self {
        let db = fresh_db("tansu");
        Self::start_with_storage(db.url.expose().to_owned())
    }

    fn start_with_storage(storage: String) -> Self {
        let mut b = Self { port: free_port(), storage, child: None };
        b.restart();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: self.bootstrap(),
            topic_partitions: 1,
            message_timeout_ms: 5_000,
            relay_poll_ms: 100,
            metadata_refresh_ms: 1_000,
            ..KafkaConfig::default()
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu_bin())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", &self.storage])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu ({}): {e}; run `make setup`", tansu_bin().display()));
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        assert!(wait_listening(addr, Duration::from_secs(20)), "tansu did not start listening on {addr}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Captured spans for trace-propagation assertions; installs a global subscriber once.
pub fn span_capture() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let tracer = provider.tracer("zhengna-tests");
        opentelemetry::global::set_tracer_provider(provider);
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .try_init();
        exporter
    })
}

/// Finished spans captured so far.
pub fn finished_spans() -> Vec<SpanData> {
    span_capture().get_finished_spans().unwrap_or_default()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
