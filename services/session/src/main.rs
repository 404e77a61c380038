fn main() -> std::process::ExitCode {
    zhengna_platform::main_support::run("session", |cfg, shutdown| async move {
        zhengna_session::App::build(cfg, shutdown).await?.run_until_stopped().await
    })
}
