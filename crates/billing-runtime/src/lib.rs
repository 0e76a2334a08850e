#![doc = include_str!("../README.md")]

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use billing_config::{ServiceKind, Settings};
use billing_http::health::{DatabaseCheck, Health, HealthCheck, RedisCheck};
use billing_http::server::{AppContext, Routes};
use billing_infra::{DbPool, Redis, migrate};
use billing_queue::scheduler::{self, Tick};
use billing_queue::worker::Consumer;
use billing_queue::{Queue, QueueName};
use clap::{Parser, Subcommand};
use diesel_migrations::EmbeddedMigrations;

/// The connections a service process holds.
#[derive(Clone)]
pub struct Infra {
    pub settings: Arc<Settings>,
    pub db: DbPool,
    pub redis: Redis,
    /// The time every decision is made at.
    pub clock: billing_infra::SharedClock,
    /// Set when the clock can be moved (`TEST_CLOCK=true`, test environment only).
    pub test_clock: Option<billing_infra::TestClock>,
}

impl std::fmt::Debug for Infra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Infra")
            .field("service", &self.settings.service)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl Infra {
    /// Builds the pool and the Redis handle; neither connects until first used, so a process starts
    /// (and reports itself unhealthy) while a dependency is down.
    pub fn connect(settings: Arc<Settings>) -> anyhow::Result<Self> {
        let db = billing_infra::db::build_pool(&settings.database).context("building the database pool")?;
        let redis = Redis::connect_lazy(&settings.redis).context("REDIS_URL: cannot create the Redis client")?;
        let test_clock = settings.test_clock.then(|| billing_infra::TestClock::new(redis.clone()));
        let clock: billing_infra::SharedClock = match &test_clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(billing_infra::SystemClock),
        };
        Ok(Self { settings, db, redis, clock, test_clock })
    }
}

/// What a service brings to the shared runtime.
pub trait Service: 'static {
    /// Which service this is.
    const KIND: ServiceKind;
    /// Its migrations, embedded in the binary.
    const MIGRATIONS: EmbeddedMigrations;

    /// Its OpenAPI document (the common routes are merged in by the runtime).
    fn openapi() -> utoipa::openapi::OpenApi;

    /// A one-paragraph description for the OpenAPI document.
    fn description() -> &'static str;

    /// What the service's handlers and jobs share, built once per process on top of [`Infra`].
    type State: Clone + Send + Sync + 'static;

    /// Builds the state (once per process: by the server before it serves, by the worker before it consumes).
    fn state(infra: &Infra) -> anyhow::Result<Self::State>;

    /// The function that registers the service's routes.
    fn routes(state: &Self::State) -> Routes;

    /// The queues this service's worker consumes (and whose stats it reports).
    const QUEUES: &'static [QueueName];

    /// Dependency checks for `/v1/health/detailed`, beyond the database, Redis and the queues.
    fn extra_health_checks(_infra: &Infra) -> Vec<Arc<dyn HealthCheck>> {
        Vec::new()
    }

    /// The consumer of each of [`Service::QUEUES`].
    fn consumers(infra: &Infra, state: &Self::State) -> anyhow::Result<Vec<Consumer>>;

    /// Periodic work of this service's scheduler, beyond queue maintenance and the outbox relay.
    fn ticks(_infra: &Infra, _state: &Self::State) -> Vec<Tick> {
        Vec::new()
    }

    /// Runs the queue consumers and the scheduler until `shutdown` resolves.
    fn worker(infra: Infra, shutdown: ShutdownSignal) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            let state = Self::state(&infra)?;
            let consumers = Self::consumers(&infra, &state)?;
            let mut ticks = Self::ticks(&infra, &state);
            run_worker(&infra, consumers, &mut ticks, shutdown).await
        }
    }

    /// Creates an administrator (or promotes an existing account) with an operator-supplied password.
    fn create_admin(infra: Infra, email: String, password: String) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            let _ = (infra, email, password);
            anyhow::bail!("this service has no accounts")
        }
    }

    /// Loads the development seed data (`env-manager.sh seed`).
    fn seed(infra: Infra) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            let _ = infra;
            tracing::info!("no seed data is defined for this service");
            Ok(())
        }
    }
}

/// Routes registered by `configure`, with `state` as their shared app data (what [`Service::routes`] usually is).
pub fn routes_with<T: Clone + Send + Sync + 'static>(
    state: &T,
    configure: fn(&mut actix_web::web::ServiceConfig),
) -> Routes {
    let state = actix_web::web::Data::new(state.clone());
    Arc::new(move |cfg: &mut actix_web::web::ServiceConfig| {
        cfg.app_data(state.clone()).configure(configure);
    })
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub type ShutdownSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A future that resolves on SIGINT or SIGTERM.
pub fn shutdown_signal() -> ShutdownSignal {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

#[derive(Debug, Parser)]
#[command(version, about = "Run with APP_ENV=development|staging|production|test (default development).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (applies migrations first in development and test).
    Serve,
    /// Run the queue consumers and the scheduler.
    Worker,
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Load the development seed data.
    Seed,
    /// Load and validate the configuration, then exit.
    CheckConfig,
    /// Create an administrator; the password is read from ADMIN_PASSWORD or the first line of standard input.
    CreateAdmin {
        /// The administrator's email.
        #[arg(long)]
        email: String,
    },
}

/// The whole `main` of a service binary.
pub fn main<S: Service>() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(S::KIND) {
        Ok(settings) => Arc::new(settings),
        Err(err) => {
            eprintln!("{}: configuration error: {err}", S::KIND.name());
            return ExitCode::from(2);
        }
    };
    if let Err(err) = billing_auth::jwt::check_keys(&settings.jwt) {
        eprintln!("{}: configuration error: {err}", S::KIND.name());
        return ExitCode::from(2);
    }
    billing_queue::set_time_scale(settings.queue_time_scale);
    // Held to the end of `main`: dropping it flushes the log lines still buffered.
    let _log = match billing_http::telemetry::init(&settings.log) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("{}: configuration error: {err}", S::KIND.name());
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{}: cannot start the async runtime: {err}", S::KIND.name());
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve::<S>(settings).await,
            Command::Worker => {
                let infra = Infra::connect(settings)?;
                tracing::info!(service = S::KIND.name(), "worker started");
                S::worker(infra, shutdown_signal()).await
            }
            Command::Migrate => run_migrations::<S>(&settings).await,
            Command::Seed => {
                run_migrations::<S>(&settings).await?;
                S::seed(Infra::connect(settings)?).await
            }
            Command::CreateAdmin { email } => {
                let password = match std::env::var("ADMIN_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                S::create_admin(Infra::connect(settings)?, email, password).await
            }
            Command::CheckConfig => {
                println!("{}: configuration is valid for {}", S::KIND.name(), settings.app_env.as_str());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{} stopped with an error", S::KIND.name());
            eprintln!("{}: {err:#}", S::KIND.name());
            ExitCode::FAILURE
        }
    }
}

/// The queues of `S` on this process's Redis.
pub fn queues<S: Service>(infra: &Infra) -> Vec<Queue> {
    S::QUEUES.iter().map(|name| Queue::new(infra.redis.clone(), *name)).collect()
}

/// Runs `consumers` (apalis workers over our storage) and the scheduler (queue maintenance, the outbox relay and
/// `ticks`, each under a Redis lease) until `shutdown` resolves.
pub async fn run_worker(
    infra: &Infra,
    consumers: Vec<Consumer>,
    ticks: &mut Vec<Tick>,
    shutdown: ShutdownSignal,
) -> anyhow::Result<()> {
    let queues: Vec<Queue> = consumers.iter().map(|c| c.queue.clone()).collect();
    ticks.extend(scheduler::queue_ticks(queues.clone()));
    let by_name: std::collections::HashMap<String, Queue> =
        queues.iter().map(|q| (q.name().to_owned(), q.clone())).collect();
    let (db, by_name) = (infra.db.clone(), Arc::new(by_name));
    ticks.push(Tick {
        name: "outbox:relay",
        every: std::time::Duration::from_millis(200),
        lease: std::time::Duration::from_secs(30),
        run: Arc::new(move || {
            let (db, by_name) = (db.clone(), by_name.clone());
            Box::pin(async move {
                loop {
                    let sent =
                        billing_queue::outbox::relay_once(&db, &by_name, 500).await.map_err(|e| e.to_string())?;
                    if sent < 500 {
                        return Ok(());
                    }
                }
            })
        }),
    });
    tracing::info!(queues = ?queues.iter().map(Queue::name).collect::<Vec<_>>(), "worker consuming");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let scheduler = {
        let (redis, scope, ticks) = (infra.redis.clone(), infra.settings.service.name(), std::mem::take(ticks));
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { scheduler::run(redis, scope, ticks, stop).await })
    };
    billing_queue::worker::run(consumers, stopped(stop_rx)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = scheduler.await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Creates the database when missing and applies pending migrations.
pub async fn run_migrations<S: Service>(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database.url.expose();
    match migrate::ensure_database(url).await {
        Ok(true) => tracing::info!("database created"),
        Ok(false) => {}
        // The role may lack CREATEDB in production, where the database is provisioned beforehand.
        Err(err) => tracing::warn!(error = %err, "could not check or create the database; trying to migrate anyway"),
    }
    let applied = migrate::run_pending(url, S::MIGRATIONS).await.context("applying migrations")?;
    if applied.is_empty() {
        tracing::info!("migrations: database is up to date");
    } else {
        tracing::info!(applied = ?applied, "migrations applied");
    }
    Ok(())
}

/// The HTTP server of `S`, built and bound but not yet awaited.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
    pub infra: Infra,
}

/// Builds the app of `S` and binds it to `listener`.
pub fn start_server<S: Service>(infra: Infra, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let settings = infra.settings.clone();
    let queues = billing_http::queues::Queues(Arc::new(queues::<S>(&infra)));
    let mut checks: Vec<Arc<dyn HealthCheck>> = vec![
        Arc::new(DatabaseCheck(infra.db.clone())),
        Arc::new(RedisCheck(infra.redis.clone())),
        Arc::new(billing_http::queues::QueueCheck(queues.clone())),
    ];
    checks.extend(S::extra_health_checks(&infra));
    let ctx = AppContext {
        settings: settings.clone(),
        health: Health::new(S::KIND.name(), env!("CARGO_PKG_VERSION"), checks),
        openapi: Arc::new(billing_http::openapi::document(S::openapi(), S::KIND.name(), S::description())),
        metrics: billing_http::metrics::install(),
    };
    let service_routes = S::routes(&S::state(&infra)?);
    // Both services verify access tokens (the public key only) and expose their queues to administrators.
    let verifier = actix_web::web::Data::new(billing_http::auth::Authenticator {
        verifier: billing_auth::JwtVerifier::from_settings(&settings.jwt).map_err(|e| anyhow::anyhow!("{e}"))?,
        // Tokens live in real time, whatever the billing clock says (a moved test clock leaves sessions alone).
        clock: Arc::new(billing_infra::SystemClock),
        revocations: billing_http::auth::Revocations::new(infra.redis.clone()),
    });
    let queues = actix_web::web::Data::new(queues);
    // The keys of the services' signed traffic, read once, for the signed-request extractors.
    let signed = actix_web::web::Data::new(billing_http::signed::Verifier {
        keys: billing_http::signed::ServiceKeys::from_settings(&settings.signing),
        clock: infra.clock.clone(),
    });
    let test_clock = infra.test_clock.clone();
    let routes: Routes = Arc::new(move |cfg: &mut actix_web::web::ServiceConfig| {
        cfg.app_data(verifier.clone())
            .app_data(signed.clone())
            .app_data(queues.clone())
            .configure(billing_http::queues::configure);
        if let Some(clock) = &test_clock {
            billing_http::clock::configure(cfg, clock.clone());
        }
        service_routes(cfg);
    });
    let addr = listener.local_addr()?;
    let server = billing_http::server::serve(ctx, routes, listener)?;
    Ok(RunningServer { addr, server, infra })
}

async fn serve<S: Service>(settings: Arc<Settings>) -> anyhow::Result<()> {
    if settings.database.migrate_on_start {
        run_migrations::<S>(&settings).await?;
    }
    let infra = Infra::connect(settings.clone())?;
    let bind = (settings.http.host.as_str(), settings.http.port);
    let listener = TcpListener::bind(bind)
        .with_context(|| format!("cannot listen on {}:{}", settings.http.host, settings.http.port))?;
    let running = start_server::<S>(infra, listener)?;
    tracing::info!(
        service = S::KIND.name(),
        env = settings.app_env.as_str(),
        addr = %running.addr,
        docs = format!("http://{}/docs/", running.addr),
        "listening"
    );
    running.server.await.context("HTTP server failed")
}
