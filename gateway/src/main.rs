fn main() -> std::process::ExitCode {
    zhengna_platform::main_support::run("gateway", |cfg, shutdown| async move {
        zhengna_gateway::App::build(cfg, shutdown).await?.run_until_stopped().await
    })
}
