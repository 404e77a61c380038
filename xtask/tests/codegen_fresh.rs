//! Fails when `crates/proto/src/gen` does not match what `cargo xtask codegen` would write.

use std::path::Path;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read gen dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn generated_code_is_fresh() {
    let tmp = std::env::temp_dir().join(format!("zhengna-codegen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    xtask::codegen::generate(&xtask::codegen::repo_root(), &tmp).expect("codegen");
    let fresh = files(&tmp);
    let checked_in = files(&xtask::codegen::default_out());
    let _ = std::fs::remove_dir_all(&tmp);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fresh), names(&checked_in), "generated file set differs: run `cargo xtask codegen`");
    for ((name, a), (_, b)) in fresh.iter().zip(&checked_in) {
        assert!(a == b, "{name} is stale: run `cargo xtask codegen`");
    }
}
