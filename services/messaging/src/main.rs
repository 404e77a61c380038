fn main() -> std::process::ExitCode {
    zhengna_platform::main_support::run("messaging", |cfg, shutdown| async move {
        zhengna_messaging::App::build(cfg, shutdown).await?.run_until_stopped().await
    })
}
