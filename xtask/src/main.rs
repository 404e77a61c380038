use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "zhengna developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate crates/proto/src/gen from proto/.
    Codegen,
    /// Run the whole platform locally (expects `cargo build --workspace` done).
    Dev,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Codegen => {
            let out = xtask::codegen::default_out();
            if out.exists() {
                std::fs::remove_dir_all(&out)?;
            }
            xtask::codegen::generate(&xtask::codegen::repo_root(), &out)?;
            println!("generated {}", out.display());
            Ok(())
        }
        Cmd::Dev => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(xtask::dev::run()),
    }
}
