//! The acceptance flow over grpc-web from Node (connect-es), over HTTP/1.1 and HTTP/2.

use std::path::Path;
use std::process::Command;

use zhengna_integration_tests::Stack;

use crate::flow::CATALOG_QUESTION;

fn run_flow(stack: &Stack, http_version: &str) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc-web");
    assert!(
        dir.join("node_modules/@connectrpc/connect-node").exists(),
        "grpc-web test client not installed: run `npm ci --prefix integration-tests/grpc-web` (make test does)"
    );
    let descriptor = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/proto/src/gen/descriptor.bin");
    let out = Command::new("node")
        .arg(dir.join("flow.mjs"))
        .env("GATEWAY_URL", format!("http://{}", stack.gateway))
        .env("TOKEN", stack.token("taxpayer-jinan"))
        .env("DESCRIPTOR", descriptor)
        .env("QUESTION", CATALOG_QUESTION)
        .env("HTTP_VERSION", http_version)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "node failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json result")
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_client_runs_the_first_flow() {
    let stack = Stack::start().await;
    for version in ["1.1", "2"] {
        let r = run_flow(&stack, version);
        assert_eq!(r["first"], serde_json::json!([1, 2]), "HTTP/{version}: {r}");
        assert_eq!(r["senders"], serde_json::json!([1, 2]), "taxpayer then bot: {r}");
        assert_eq!(r["decision"], serde_json::json!(1), "DECISION_ANSWER: {r}");
        assert_eq!(r["catalogId"], serde_json::json!("DL-001"), "{r}");
        assert_eq!(r["resumed"], serde_json::json!([2]), "after_seq=1 yields seq 2: {r}");
        assert_eq!(r["extraAfterResume"], serde_json::Value::Null, "nothing after seq 2: {r}");
        assert_eq!(r["unauthenticated"], serde_json::json!(16), "no token → Unauthenticated: {r}");
    }
    stack.stop().await;
}
