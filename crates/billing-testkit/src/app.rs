//! A service's real app, served in-process on a free port with its own database and Redis prefix.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use billing_config::{ServiceKind, Settings};
use billing_queue::{Queue, QueueName};
use billing_runtime::{Infra, Service};

use crate::{MigrationSet, TestDb, TestRedis};

/// A running service for one test.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub settings: Arc<Settings>,
    pub infra: Infra,
    pub db: TestDb,
    pub redis: TestRedis,
    handle: ServerHandle,
    /// The queues the service's worker consumes: none may hold a failed job when the test ends.
    queues: &'static [QueueName],
    failed_jobs_expected: bool,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// The key naming a service's database URL.
pub fn database_url_key(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Subscription => "SUBSCRIPTION_DATABASE_URL",
        ServiceKind::Payment => "PAYMENT_DATABASE_URL",
    }
}

impl TestApp {
    /// Serves `S` with a fresh database and Redis prefix.
    pub async fn spawn<S: Service>(migrations: MigrationSet) -> Self {
        Self::spawn_with::<S>(migrations, &[]).await
    }

    /// Serves `S` with extra configuration `overrides` (process-environment style).
    pub async fn spawn_with<S: Service>(migrations: MigrationSet, overrides: &[(&str, String)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        Self::spawn_on::<S>(migrations, overrides, listener).await
    }

    /// Serves `S` on `listener`, bound beforehand so two services can be told each other's address.
    pub async fn spawn_on<S: Service>(
        migrations: MigrationSet,
        overrides: &[(&str, String)],
        listener: TcpListener,
    ) -> Self {
        let db = TestDb::new(migrations).await;
        let redis = TestRedis::new();
        let mut all = vec![(database_url_key(S::KIND), db.url.clone()), ("REDIS_KEY_PREFIX", redis.prefix.clone())];
        // Later entries win: an override replaces the test database or Redis.
        all.extend(overrides.iter().cloned());
        let settings = Arc::new(crate::test_settings(S::KIND, &all));
        // As the service's `main` does: the test environment's retry delays are scaled down.
        billing_queue::set_time_scale(settings.queue_time_scale);
        let infra = Infra::connect(settings.clone()).expect("connecting the test infrastructure");
        let running = billing_runtime::start_server::<S>(infra, listener).expect("starting the test server");
        let handle = running.server.handle();
        tokio::spawn(running.server);
        Self {
            base_url: format!("http://{}", running.addr),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            settings,
            infra: running.infra,
            db,
            redis,
            handle,
            queues: S::QUEUES,
            failed_jobs_expected: false,
        }
    }

    /// The test means some job of this service to fail: the drop check is off.
    pub fn expect_failed_jobs(&mut self) {
        self.failed_jobs_expected = true;
    }

    /// The failed jobs on this service's queues, as `queue: action (last error)`, read on a connection and runtime
    /// of their own (the test's runtime may be the thread that is dropping the app).
    pub fn failed_jobs(&self) -> Vec<String> {
        failed_jobs(self.settings.redis.url.expose(), &self.settings.redis.key_prefix, self.queues)
    }

    /// The service's API, called with this app's client.
    pub fn api(&self) -> crate::Api {
        crate::Api::new(self.client.clone(), self.base_url.clone())
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET failed")
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("POST failed")
    }
}

/// The failed jobs on `queues` under `prefix`, as `queue: action (last error)`, read on a connection and runtime of
/// their own: safe from a `Drop`, even on the thread of a test's current-thread runtime.
pub fn failed_jobs(url: &str, prefix: &str, queues: &'static [QueueName]) -> Vec<String> {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    let read = move || -> Option<Vec<String>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async move {
            let timeout = std::time::Duration::from_secs(2);
            let redis = billing_infra::Redis::connect_lazy_to(&url, &prefix, timeout, timeout).ok()?;
            let mut found = Vec::new();
            for name in queues {
                for job in Queue::new(redis.clone(), *name).failed_page(0, 20).await.ok()? {
                    let action = job.envelope.map(|e| e.action).unwrap_or_default();
                    found.push(format!("{}: {action} ({})", name.as_str(), job.last_error.unwrap_or_default()));
                }
            }
            Some(found)
        })
    };
    std::thread::spawn(read).join().ok().flatten().unwrap_or_default()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A job that failed for good is work lost: no test may end with one it did not mean.
        if !self.failed_jobs_expected && !std::thread::panicking() {
            let failed = self.failed_jobs();
            assert!(failed.is_empty(), "failed jobs left behind: {failed:#?}");
        }
        let handle = self.handle.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { handle.stop(false).await });
        }
    }
}
