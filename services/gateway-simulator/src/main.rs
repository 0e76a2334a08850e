//! `gateway-simulator`: serves the simulated gateway on `GATEWAY_PORT` until interrupted.

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let config = match gateway_simulator::Config::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gateway-simulator: configuration error: {err:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gateway-simulator: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = std::net::TcpListener::bind((config.host.as_str(), config.port))?;
        let running = gateway_simulator::start(config, listener)?;
        eprintln!("gateway-simulator: listening on {}", running.url);
        tokio::signal::ctrl_c().await?;
        running.stop().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-simulator: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
