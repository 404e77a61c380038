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

/// A database config pointing at a brand-new database (created on first connect). Pools
/// hold 5 connections (many stacks run side by side in tests); benchmarks set
/// `ZHENGNA_TEST_DB_CONNECTIONS` to the production default of 10 or more.
pub fn fresh_db(prefix: &str) -> DbConfig {
    let name = format!("zt_{prefix}_{}", uuid::Uuid::new_v4().simple());
    let max_connections =
        std::env::var("ZHENGNA_TEST_DB_CONNECTIONS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(5);
    DbConfig {
        url: Secret::new(format!("{}/{}", pg_base(), &name[..name.len().min(60)])),
        max_connections,
        create_if_missing: true,
    }
}

/// Drops test databases (closing their remaining connections).
pub async fn drop_databases(names: &[String]) {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base())).await else { return };
    for name in
        names.iter().filter(|n| n.starts_with("zt_") && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
    }
    let _ = conn.close().await;
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

/// A private tansu broker on its own port, stopped on drop.
///
/// Clients reach it through a small TCP relay (the broker advertises the relay's address),
/// so a test can take the broker off the network with [`Broker::cut`] and bring it back
/// with [`Broker::restore`] while it keeps its topics, logs and group offsets: what a
/// client sees of a Kafka broker restart. (tansu's only storage available here is in
/// memory, so killing the process would also wipe its state, which a real Kafka restart
/// does not.)
pub struct Broker {
    public_port: u16,
    child: Option<Child>,
    cut: tokio::sync::watch::Sender<bool>,
    _relay: std::thread::JoinHandle<()>,
}

impl Broker {
    pub fn start() -> Self {
        let public_port = free_port();
        let broker_port = free_port();
        let listen = format!("tcp://127.0.0.1:{broker_port}");
        let advertised = format!("tcp://127.0.0.1:{public_port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &listen,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu ({}): {e}; run `make setup`", tansu_bin().display()));
        let upstream: SocketAddr = ([127, 0, 0, 1], broker_port).into();
        assert!(wait_listening(upstream, Duration::from_secs(20)), "tansu did not start listening on {upstream}");
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let listener = std::net::TcpListener::bind(("127.0.0.1", public_port)).expect("bind relay");
        let relay = std::thread::spawn(move || relay(listener, upstream, cut_rx));
        Self { public_port, child: Some(child), cut, _relay: relay }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.public_port)
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

    /// Takes the broker off the network: open connections are dropped, new ones closed.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Brings the broker back, state intact.
    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

/// Forwards connections to `upstream` until the cut flag is raised.
fn relay(listener: std::net::TcpListener, upstream: SocketAddr, cut: tokio::sync::watch::Receiver<bool>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return,
    };
    rt.block_on(async move {
        let _ = listener.set_nonblocking(true);
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            if *cut.borrow() {
                drop(inbound);
                continue;
            }
            let mut cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.wait_for(|c| *c) => {}
                }
            });
        }
    });
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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
