fn main() -> std::process::ExitCode {
    zhengna_platform::main_support::run("appointment", |cfg, shutdown| async move {
        zhengna_appointment::App::build(cfg, shutdown).await?.run_until_stopped().await
    })
}
