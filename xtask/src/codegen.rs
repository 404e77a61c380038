//! Generates `crates/proto/src/gen` from `proto/` with protox (pure Rust, no protoc).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Writes generated Rust and `descriptor.bin` for every proto under `root/proto` into `out`.
pub fn generate(root: &Path, out: &Path) -> Result<()> {
    let proto_dir = root.join("proto");
    let mut files = Vec::new();
    proto_files(&proto_dir, &mut files)?;
    let relative: Vec<PathBuf> =
        files.iter().map(|f| f.strip_prefix(&proto_dir).map(Path::to_path_buf)).collect::<Result<_, _>>()?;
    let fds = protox::compile(&relative, [&proto_dir]).context("compiling protos")?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .out_dir(out)
        .include_file("mod.rs")
        .compile_fds(fds)
        .context("generating rust")?;
    Ok(())
}

/// The checked-in output directory.
pub fn default_out() -> PathBuf {
    repo_root().join("crates/proto/src/gen")
}
