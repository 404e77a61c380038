//! `make dev`: starts a Kafka-protocol broker (if none is listening), every service and the
//! gateway as child processes with a fresh internal identity key, waits until each reports
//! SERVING, prints the URLs, and stops everything on Ctrl-C.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::codegen::repo_root;

struct Svc {
    name: &'static str,
    port: u16,
    metrics: u16,
}

const SERVICES: &[Svc] = &[
    Svc { name: "answer", port: 7061, metrics: 9461 },
    Svc { name: "queue", port: 7062, metrics: 9462 },
    Svc { name: "session", port: 7063, metrics: 9463 },
    Svc { name: "appointment", port: 7064, metrics: 9464 },
    Svc { name: "messaging", port: 7065, metrics: 9465 },
];
const GATEWAY_PORT: u16 = 8080;
const BROKER: &str = "127.0.0.1:9092";

fn listening(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".zhengna-tools/bin/tansu");
    if cached.exists() { cached } else { PathBuf::from("tansu") }
}

/// A fresh internal identity key for this run, shared by the gateway and the services.
fn random_key() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn spawn(bin: &Path, name: &str, envs: &[(String, String)], log_dir: &Path) -> Result<Child> {
    let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
    let err = log.try_clone()?;
    Command::new(bin)
        .current_dir(repo_root())
        .envs(envs.iter().cloned())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn serving(port: u16) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")) else {
        return false;
    };
    match endpoint.connect().await {
        Ok(ch) => HealthClient::new(ch)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .is_ok_and(|r| r.get_ref().status == ServingStatus::Serving as i32),
        Err(_) => false,
    }
}

/// Waits until every service is SERVING and the gateway listens, failing fast when a
/// child exits.
async fn wait_ready(children: &mut [(String, Child)]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending: Vec<&Svc> = SERVICES.iter().collect();
    let mut gateway_up = false;
    while !pending.is_empty() || !gateway_up {
        if let Some((name, status)) =
            children.iter_mut().find_map(|(n, c)| c.try_wait().ok().flatten().map(|s| (n.clone(), s)))
        {
            bail!("{name} exited during start-up ({status}); see .dev/logs/{name}.log");
        }
        let mut still = Vec::new();
        for svc in pending {
            if serving(svc.port).await {
                println!("  ✓ {:<12} SERVING on 127.0.0.1:{}", svc.name, svc.port);
            } else {
                still.push(svc);
            }
        }
        pending = still;
        if !gateway_up && listening(&format!("127.0.0.1:{GATEWAY_PORT}")) {
            gateway_up = true;
            println!("  ✓ {:<12} listening on 127.0.0.1:{GATEWAY_PORT}", "gateway");
        }
        if Instant::now() > deadline {
            bail!("not ready within 90s: {:?}; see .dev/logs/", pending.iter().map(|s| s.name).collect::<Vec<_>>());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

async fn terminate(children: &mut [(String, Child)]) {
    for (_, c) in children.iter() {
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
    for (name, c) in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(15), c.wait()).await.is_err() {
            eprintln!("{name} did not stop in time; killing");
            let _ = c.kill().await;
        }
    }
}

pub async fn run() -> Result<()> {
    let root = repo_root();
    let bin_dir = root.join("target/debug");
    let log_dir = root.join(".dev/logs");
    std::fs::create_dir_all(&log_dir)?;
    if !listening("127.0.0.1:5432") {
        bail!("PostgreSQL is not listening on 127.0.0.1:5432; run `make setup`");
    }
    let mut children: Vec<(String, Child)> = Vec::new();
    if listening(BROKER) {
        println!("Using the Kafka-protocol broker already on {BROKER}");
    } else {
        let url = format!("tcp://{BROKER}");
        let log = std::fs::File::create(log_dir.join("broker.log"))?;
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting tansu (run `make setup` to install it)")?;
        children.push(("broker".into(), child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listening(BROKER) {
            if Instant::now() > deadline {
                bail!("tansu did not start; see .dev/logs/broker.log");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("Started tansu on {BROKER}");
    }
    let key = random_key()?;
    println!("Starting services (logs in .dev/logs/):");
    for svc in SERVICES {
        let prefix = format!("ZHENGNA_{}__", svc.name.to_uppercase());
        let mut envs = vec![
            (format!("{prefix}IDENTITY__KEY"), key.clone()),
            (format!("{prefix}SERVER__LISTEN"), format!("127.0.0.1:{}", svc.port)),
            (format!("{prefix}SERVER__METRICS_LISTEN"), format!("127.0.0.1:{}", svc.metrics)),
        ];
        if svc.name == "answer" {
            envs.push((format!("{prefix}SEED__CATALOG_PATH"), "services/answer/seed/standard-questions.jsonl".into()));
        }
        let bin = bin_dir.join(format!("zhengna-{}", svc.name));
        children.push((svc.name.into(), spawn(&bin, svc.name, &envs, &log_dir)?));
    }
    let gw_envs = vec![
        ("ZHENGNA_GATEWAY__IDENTITY__KEY".to_owned(), key.clone()),
        ("ZHENGNA_GATEWAY__AUTH__DEV_ISSUER".to_owned(), "true".to_owned()),
        ("ZHENGNA_GATEWAY__LISTEN".to_owned(), format!("127.0.0.1:{GATEWAY_PORT}")),
    ];
    children.push(("gateway".into(), spawn(&bin_dir.join("zhengna-gateway"), "gateway", &gw_envs, &log_dir)?));

    if let Err(e) = wait_ready(&mut children).await {
        terminate(&mut children).await;
        return Err(e);
    }
    println!();
    println!("zhengna is running. Press Ctrl-C to stop everything.");
    println!("  Taxpayer demo host page (widget) http://127.0.0.1:{GATEWAY_PORT}/");
    println!("  Personal centre (个人中心)       http://127.0.0.1:{GATEWAY_PORT}/widget.html#/center");
    println!(
        "  Agent console                    http://127.0.0.1:{GATEWAY_PORT}/agent/   (placeholder until the web issue)"
    );
    println!(
        "  Admin console                    http://127.0.0.1:{GATEWAY_PORT}/admin/   (placeholder until the web issue)"
    );
    println!("  Demo logins                      http://127.0.0.1:{GATEWAY_PORT}/dev/identities");
    println!("  Token for a demo login           http://127.0.0.1:{GATEWAY_PORT}/dev/token?user=taxpayer-jinan");
    println!("  grpc-web / gRPC endpoint         http://127.0.0.1:{GATEWAY_PORT}");
    println!("  Metrics                          http://127.0.0.1:9460/metrics (gateway), :9461-9465 (services)");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                let exited = children
                    .iter_mut()
                    .find_map(|(name, c)| c.try_wait().ok().flatten().map(|status| (name.clone(), status)));
                if let Some((name, status)) = exited {
                    eprintln!("{name} exited ({status}); stopping everything. See .dev/logs/{name}.log");
                    terminate(&mut children).await;
                    bail!("{name} exited");
                }
            }
        }
    }
    println!("\nStopping…");
    terminate(&mut children).await;
    println!("Stopped.");
    Ok(())
}
