#![doc = include_str!("../README.md")]
#![expect(clippy::expect_used, reason = "a harness that cannot set up must stop the test loudly")]

mod api;
mod app;
mod conformance;
mod db;
mod gateway;
pub mod process;
mod redis_server;
pub mod snapshot;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use api::{Answer, Api, Call};
pub use app::{TestApp, failed_jobs};
pub use conformance::{
    assert_health_follows_its_dependencies, assert_migrations_round_trip, assert_openapi_is_consistent,
};
pub use db::{MigrationSet, TestDb};
pub use gateway::Gateway;
pub use redis_server::RedisServer;

use billing_config::{AppEnv, Loader, ServiceKind, Settings};

/// The repository root (tests locate config and migrations from it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Settings of the test environment for `service`, with `overrides` applied as process variables.
pub fn test_settings(service: ServiceKind, overrides: &[(&str, String)]) -> Settings {
    // Warnings and errors of the code under test reach the test's captured output, shown when it fails (a 500's
    // cause is logged, never answered).
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .try_init();
    let mut process: HashMap<String, String> = std::env::vars().collect();
    process.insert("APP_ENV".to_owned(), "test".to_owned());
    for (key, value) in overrides {
        process.insert((*key).to_owned(), value.clone());
    }
    let loader = Loader::new(repo_root().join("config/environments"), process);
    let layers = loader.load(AppEnv::Test).expect("test.env must load");
    Settings::from_layers(&layers, service).expect("test settings must validate")
}

/// A Redis key prefix of its own for one test.
#[derive(Debug)]
pub struct TestRedis {
    pub prefix: String,
    url: String,
}

impl TestRedis {
    /// A new prefix on the test Redis.
    pub fn new() -> Self {
        let settings = test_settings(ServiceKind::Subscription, &[]);
        Self { prefix: format!("t:{}:", uuid::Uuid::new_v4().simple()), url: settings.redis.url.expose().clone() }
    }

    /// The Redis URL in use.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        // Best effort: a test's keys are unreachable by any other test anyway (unique prefix).
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let client = redis::Client::open(url)?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).exec(&mut conn)?;
            }
            Ok(())
        })
        .join();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn poll_until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}
