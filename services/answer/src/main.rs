fn main() -> std::process::ExitCode {
    zhengna_platform::main_support::run("answer", |cfg, shutdown| async move {
        zhengna_answer::App::build(cfg, shutdown).await?.run_until_stopped().await
    })
}
