fn main() -> std::process::ExitCode {
    zhengna_platform::main_support::run("queue", |cfg, shutdown| async move {
        zhengna_queue::App::build(cfg, shutdown).await?.run_until_stopped().await
    })
}
