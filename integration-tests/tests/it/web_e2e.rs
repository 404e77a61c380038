//! The taxpayer web in a real browser: each `web/e2e/*.test.mjs` file runs in Debian's
//! Chromium (playwright-core) against a fresh stack whose gateway serves `web/dist` and mints
//! demo tokens. `make test` builds the web first; `make setup` installs Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use zhengna_integration_tests::Stack;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

async fn run_browser_tests(file: &str) {
    let web = web_dir();
    assert!(
        web.join("dist/widget.html").exists(),
        "web/dist is missing: run `npm ci && npm run build` in web/ (make test does)"
    );
    assert!(web.join("node_modules/playwright-core").exists(), "web/node_modules missing: run `npm ci` in web/");
    assert!(Path::new(&chromium()).exists(), "Chromium not found at {}: run `make setup`", chromium());
    let stack = Stack::start_with(|cfg| {
        cfg.web_dir = web.join("dist");
        cfg.auth.dev_issuer = true;
    })
    .await;
    let base = format!("http://{}", stack.gateway);
    let file = web.join("e2e").join(file);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--test")
            .arg("--test-reporter=spec")
            // A stuck test fails on its own instead of holding the whole file open.
            .arg("--test-timeout=180000")
            .arg(&file)
            .env("E2E_BASE_URL", base)
            .env("CHROMIUM", chromium())
            .output()
            .expect("node runs")
    })
    .await
    .expect("join");
    stack.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser tests failed ({}):\n{stdout}\n{stderr}", out.status);
    println!("{stdout}");
}

macro_rules! browser_tests {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                run_browser_tests($file).await;
            }
        )*

        /// Every e2e file has a test here, so none is silently skipped.
        #[test]
        fn every_browser_test_file_is_run() {
            let listed: Vec<&str> = vec![$($file),*];
            let mut on_disk: Vec<String> = std::fs::read_dir(web_dir().join("e2e"))
                .expect("web/e2e")
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| n.ends_with(".test.mjs"))
                .collect();
            on_disk.sort();
            let mut listed_sorted: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            listed_sorted.sort();
            assert_eq!(listed_sorted, on_disk, "list each web/e2e/*.test.mjs in browser_tests! (web_e2e.rs)");
        }
    };
}

browser_tests! {
    web_widget => "widget.test.mjs",
    web_chat => "chat.test.mjs",
    web_chat_tools => "chat-tools.test.mjs",
    web_human => "human.test.mjs",
    web_network => "network.test.mjs",
    web_forms => "forms.test.mjs",
    web_center => "center.test.mjs",
}
