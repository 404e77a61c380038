//! `buf lint` (STANDARD rules, see buf.yaml) passes on proto/.

use std::process::Command;

#[test]
fn protos_pass_buf_lint() {
    let root = xtask::codegen::repo_root();
    let buf = root.join("tools/node_modules/.bin/buf");
    assert!(buf.exists(), "buf is not installed: run `make setup` (npm ci in tools/)");
    let out = Command::new(&buf).arg("lint").current_dir(&root).output().expect("run buf");
    assert!(
        out.status.success(),
        "buf lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
