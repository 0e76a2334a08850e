//! The service binaries run as processes, the way an operator runs them: configuration checks and servers whose
//! memory can be read from outside.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestDb, TestRedis, poll_until, repo_root};

/// A key pair of nobody's: not in any file of the repository, so a deployed configuration may use it.
pub const UNPUBLISHED_JWT_PRIVATE_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIEP/wIBHfOrmfseBxrDvTJKX5HV/WsXhJbPJ8dogqhvM";
/// The public half of [`UNPUBLISHED_JWT_PRIVATE_KEY`].
pub const UNPUBLISHED_JWT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEA8kl7LGcLCboMzBmHdtwLINjlVxqPZiDw8LxJDIpv6ac=";

/// Strong values for everything a deployed environment (`staging` or `production`) takes from the process.
pub fn deployed_env(env: &str) -> Vec<(String, String)> {
    [
        ("APP_ENV", env),
        ("CONFIG_DIR", &repo_root().join("config/environments").display().to_string()),
        ("PG_HOST", "db.internal"),
        ("PG_PASSWORD", "7d1c5e0f9a8b2c3d4e5f60718293a4b5"),
        ("REDIS_HOST", "cache.internal"),
        ("REDIS_PASSWORD", "4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4"),
        ("SUBSCRIPTION_HOST", "subscription.internal"),
        ("PAYMENT_HOST", "payment.internal"),
        ("JWT_PRIVATE_KEY", UNPUBLISHED_JWT_PRIVATE_KEY),
        ("JWT_PUBLIC_KEY", UNPUBLISHED_JWT_PUBLIC_KEY),
        ("WEBHOOK_SECRETS", "0f3c9a7e5b1d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e"),
        ("INTERNAL_SUB_TO_PAY_SECRETS", "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"),
        ("INTERNAL_PAY_TO_SUB_SECRETS", "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"),
        ("GATEWAY_WEBHOOK_SECRETS", "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3"),
        ("GATEWAY_URL", "https://api.gateway.example"),
        ("GATEWAY_API_KEY", "sk_live_5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `<binary> check-config` with exactly `env` (nothing inherited): whether it accepted, and what it printed.
pub fn check_config(binary: &Path, env: &[(String, String)]) -> (bool, String) {
    let out = Command::new(binary)
        .arg("check-config")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A service process (`serve` or `worker`) of the test environment on its own database, Redis prefix and port;
/// killed on drop.
#[derive(Debug)]
pub struct ServiceProcess {
    pub url: String,
    child: Child,
    _db: TestDb,
    _redis: TestRedis,
}

impl ServiceProcess {
    /// Starts `binary role` on `db` and a fresh Redis prefix, with `extra` settings, and waits for its health.
    pub async fn start(binary: &Path, role: &str, db: TestDb, extra: &[(&str, String)]) -> Self {
        let redis = TestRedis::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = vec![
            ("APP_ENV".into(), "test".into()),
            ("CONFIG_DIR".into(), repo_root().join("config/environments").display().to_string()),
            ("SUBSCRIPTION_DATABASE_URL".into(), db.url.clone()),
            ("PAYMENT_DATABASE_URL".into(), db.url.clone()),
            ("REDIS_KEY_PREFIX".into(), redis.prefix.clone()),
            ("SUBSCRIPTION_PORT".into(), port.to_string()),
            ("PAYMENT_PORT".into(), port.to_string()),
        ];
        for key in ["PG_PORT", "REDIS_PORT", "PATH"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let child = Command::new(binary)
            .arg(role)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let process = Self { url, child, _db: db, _redis: redis };
        let health = format!("{}/v1/health/", process.url);
        let http = reqwest::Client::new();
        poll_until(Duration::from_secs(60), "the service process to answer its health route", || async {
            http.get(&health).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM` of `/proc/<pid>/status`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `binary check-config` accepts staging and production with proper values, and refuses each of
/// `keys` set to its development or test value, saying it is published.
pub fn assert_deployed_config_refuses_published_values(binary: &Path, keys: &[&str]) {
    use billing_config::{AppEnv, Loader};
    for env in ["staging", "production"] {
        let (ok, out) = check_config(binary, &deployed_env(env));
        assert!(ok, "{env} with proper values: {out}");
        for published in [AppEnv::Development, AppEnv::Test] {
            let layers = Loader::new(repo_root().join("config/environments"), Default::default())
                .load(published)
                .unwrap_or_else(|e| panic!("{e}"));
            for key in keys {
                let value = layers.get(key).ok().flatten().unwrap_or_else(|| panic!("{key} in {published:?}"));
                let mut vars = deployed_env(env);
                vars.push(((*key).to_owned(), value));
                let (ok, out) = check_config(binary, &vars);
                assert!(!ok, "{env} accepted the {published:?} {key}: {out}");
                assert!(out.contains("development or test value"), "{env} {key}: {out}");
            }
        }
    }
}
