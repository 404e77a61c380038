//! The shared body of every service's `main`: flags, config, `--dump-config`, telemetry,
//! signals, run.

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::StartupError;
use crate::config::{self, CommonArgs};
use crate::telemetry::{self, TelemetryConfig};

/// Implemented by each service's top-level config.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    fn telemetry(&self) -> &TelemetryConfig;
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

/// Parses flags, loads config and runs `run` until a signal stops it.
pub fn run<C, F, Fut>(service: &'static str, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StartupError>>,
{
    let cli = Cli::parse();
    let cfg: C = match config::load(service, &cli.common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.common.dump_config {
        return match config::dump(&cfg) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{service}: {e}");
                ExitCode::from(2)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{service}: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let _guard = match telemetry::init(service, cfg.telemetry()) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{service}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = crate::server::shutdown_on_signal();
        match run(cfg, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "{service} failed");
                ExitCode::FAILURE
            }
        }
    })
}
