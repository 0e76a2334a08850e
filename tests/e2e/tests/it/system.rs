//! The system as processes: the gateway simulator, both services and both workers, started the way
//! `env-manager.sh` starts them, on private ports, with their own databases, Redis prefix and gateway journal, and
//! a test clock every process shares (moved only through the administrators' `POST /v1/admin/clock`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use billing_queue::QueueName;
use billing_testkit::{Api, TestDb, TestRedis, poll_until, repo_root};
use reqwest::Method;
use serde_json::{Value, json};

use billing_config::ServiceKind;
use billing_testkit::MigrationSet;

pub const SUB: MigrationSet =
    MigrationSet { service: ServiceKind::Subscription, embedded: || subscription_service::MIGRATIONS };
pub const PAY: MigrationSet = MigrationSet { service: ServiceKind::Payment, embedded: || payment_service::MIGRATIONS };

fn binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join(name)).unwrap_or_else(|| PathBuf::from(name))
}

/// `N` distinct free ports for one system's processes, picked at random below the kernel's ephemeral range
/// (32768 and up): a port the kernel handed out for `:0` and took back could be handed to a parallel test before
/// this system's process binds it (seen once: a payment request answered by another test's gateway simulator).
fn free_ports<const N: usize>() -> [u16; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut ports = [0_u16; N];
    let mut filled = 0;
    while filled < N {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = 20_000 + u16::try_from(random % 12_000).unwrap_or(0);
        if !ports[..filled].contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports[filled] = port;
            filled += 1;
        }
    }
    ports
}

/// Every process `env-manager.sh start` runs in development.
pub const PROCESSES: [&str; 5] =
    ["gateway-simulator", "subscription-service", "subscription-worker", "payment-service", "payment-worker"];

pub struct System {
    env: Vec<(String, String)>,
    logs: tempfile::TempDir,
    pub sub_url: String,
    pub pay_url: String,
    procs: std::collections::HashMap<&'static str, Child>,
    http: reqwest::Client,
    pub dbs: (TestDb, TestDb),
    _redis: TestRedis,
}

impl System {
    pub async fn start() -> Self {
        let (sub_db, pay_db, redis) = (TestDb::new(SUB).await, TestDb::new(PAY).await, TestRedis::new());
        let [sub_port, pay_port, gateway_port] = free_ports();
        let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sub_url = format!("http://127.0.0.1:{sub_port}");
        let pay_url = format!("http://127.0.0.1:{pay_port}");
        let mut env: Vec<(String, String)> = vec![
            ("APP_ENV".into(), "test".into()),
            ("CONFIG_DIR".into(), repo_root().join("config/environments").display().to_string()),
            ("SUBSCRIPTION_DATABASE_URL".into(), sub_db.url.clone()),
            ("PAYMENT_DATABASE_URL".into(), pay_db.url.clone()),
            ("REDIS_KEY_PREFIX".into(), redis.prefix.clone()),
            ("SUBSCRIPTION_PORT".into(), sub_port.to_string()),
            ("PAYMENT_PORT".into(), pay_port.to_string()),
            ("SUBSCRIPTION_SERVICE_URL".into(), sub_url.clone()),
            ("PAYMENT_SERVICE_URL".into(), pay_url.clone()),
            ("GATEWAY_PORT".into(), gateway_port.to_string()),
            // One clock for every process, moved by the tests through the administrators' route.
            ("TEST_CLOCK".into(), "true".into()),
            ("GATEWAY_URL".into(), format!("http://127.0.0.1:{gateway_port}")),
            ("GATEWAY_SIMULATOR_JOURNAL".into(), logs.path().join("gateway.journal").display().to_string()),
            // Everything our code logs, so the card-data search below has something to search.
            ("LOG_LEVEL".into(), "debug,h2=info,hyper=info,reqwest=info,rustls=info".into()),
        ];
        for key in ["PG_PORT", "REDIS_PORT", "PATH"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        let mut system = Self {
            env,
            logs,
            sub_url,
            pay_url,
            procs: Default::default(),
            http: reqwest::Client::new(),
            dbs: (sub_db, pay_db),
            _redis: redis,
        };
        let seed = Command::new(binary("subscription-service"))
            .arg("seed")
            .envs(system.env.clone())
            .output()
            .unwrap_or_else(|e| panic!("seed: {e}"));
        assert!(seed.status.success(), "{}", String::from_utf8_lossy(&seed.stderr));
        for name in PROCESSES {
            system.spawn(name);
        }
        system.wait_healthy(&format!("http://127.0.0.1:{gateway_port}")).await;
        system.wait_healthy(&system.sub_url.clone()).await;
        system.wait_healthy(&system.pay_url.clone()).await;
        system
    }

    pub fn spawn(&mut self, name: &'static str) {
        let (bin, role) = match name {
            "subscription-service" => ("subscription-service", "serve"),
            "subscription-worker" => ("subscription-service", "worker"),
            "payment-service" => ("payment-service", "serve"),
            "gateway-simulator" => ("gateway-simulator", ""),
            _ => ("payment-service", "worker"),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join(format!("{name}.log")))
            .unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(binary(bin))
            .args(Some(role).filter(|r| !r.is_empty()))
            .envs(self.env.clone())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e} (build the binaries first: cargo build --bins)"));
        self.procs.insert(name, child);
    }

    pub fn stop(&mut self, name: &str) {
        if let Some(mut child) = self.procs.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn wait_healthy(&self, base: &str) {
        let url = format!("{base}/v1/health/detailed");
        poll_until(Duration::from_secs(30), "a service to be healthy", || async {
            self.http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
    }

    pub async fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        Api::new(self.http.clone(), base).send(method, path, token, body).await.pair()
    }

    /// register → trial → use a feature → create the paid subscription: (token, trial id, subscription id, invoice id).
    pub async fn journey_to_payment(&self) -> (String, String, String, String) {
        let token = self.customer().await;
        let (s, trial) = self
            .call(
                &self.sub_url,
                Method::POST,
                "/v1/subscriptions/trial",
                Some(&token),
                Some(json!({"trial_plan_id": 1})),
            )
            .await;
        assert_eq!((s, trial["data"]["status"].as_str()), (201, Some("trial")));
        let (s, used) = self
            .call(
                &self.sub_url,
                Method::POST,
                "/v1/usage/use",
                Some(&token),
                Some(json!({"feature_name": "api_calls", "delta": 1})),
            )
            .await;
        assert_eq!((s, used["data"]["remaining"].as_i64()), (200, Some(999)));
        let (s, paid) = self
            .call(&self.sub_url, Method::POST, "/v1/subscriptions/", Some(&token), Some(json!({"plan_id": 2})))
            .await;
        assert_eq!(
            (s, paid["data"]["status"].as_str(), paid["data"]["amount"].as_str()),
            (201, Some("pending"), Some("29.99"))
        );
        let id = |v: &Value, k: &str| v["data"][k].as_str().unwrap_or_default().to_owned();
        (token, id(&trial, "id"), id(&paid, "id"), id(&paid, "invoice_id"))
    }

    pub async fn pay(&self, token: &str, sub: &str, card: &str) -> (u16, Value) {
        let body = json!({"subscription_id": sub, "amount": 29.99, "currency": "USD", "card_number": card, "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "John Doe"});
        self.call(&self.pay_url, Method::POST, "/v1/payments/process", Some(token), Some(body)).await
    }

    pub fn gateway_url(&self) -> String {
        let port = self.env.iter().find(|(k, _)| k == "GATEWAY_PORT").map(|(_, v)| v.clone()).unwrap_or_default();
        format!("http://127.0.0.1:{port}")
    }

    /// An administrator's access token (made in the subscription database, signed in over HTTP).
    pub async fn admin(&self) -> String {
        use diesel_async::AsyncConnection;
        let mut conn =
            diesel_async::AsyncPgConnection::establish(&self.dbs.0.url).await.unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::ensure_admin(&mut conn, "ops@example.com", "ops pass 12345")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body = json!({"email": "ops@example.com", "password": "ops pass 12345"});
        let (status, login) = self.call(&self.sub_url, Method::POST, "/v1/auth/login", None, Some(body)).await;
        assert_eq!(status, 200, "{login}");
        login["data"]["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// A new customer's access token.
    pub async fn customer(&self) -> String {
        let email = format!("c{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "password": "SecurePassword123!"});
        let (status, reg) = self.call(&self.sub_url, Method::POST, "/v1/auth/register", None, Some(body)).await;
        assert_eq!(status, 201, "{reg}");
        reg["data"]["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// Saves a card for the customer (it becomes their default); its payment method id.
    pub async fn save_card(&self, token: &str, number: &str) -> String {
        let body = json!({"card_number": number, "card_expiry": "12/40", "card_cvv": "123", "cardholder_name": "E2E"});
        let (status, saved) =
            self.call(&self.pay_url, Method::POST, "/v1/payment-methods", Some(token), Some(body)).await;
        assert_eq!(status, 201, "{saved}");
        saved["data"]["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Moves every process's clock forward by `seconds`.
    pub async fn advance(&self, admin: &str, seconds: i64) {
        let body = json!({"seconds": seconds});
        let (status, moved) = self.call(&self.sub_url, Method::POST, "/v1/admin/clock", Some(admin), Some(body)).await;
        assert_eq!(status, 200, "{moved}");
    }

    /// Every job left in a failed list of either service, as `queue: last error`.
    pub async fn failed_jobs(&self, admin: &str) -> Vec<String> {
        let mut failed = Vec::new();
        for base in [&self.sub_url, &self.pay_url] {
            let (status, queues) = self.call(base, Method::GET, "/v1/admin/queues", Some(admin), None).await;
            assert_eq!(status, 200, "{queues}");
            for queue in queues["data"].as_array().into_iter().flatten() {
                for job in queue["failed_jobs"].as_array().into_iter().flatten() {
                    failed.push(format!("{}: {}", queue["name"], job["last_error"]));
                }
            }
        }
        failed
    }

    /// Sets the gateway simulator's fault knobs (`fail_next`, `error_after_charge_next`, `latency_ms`).
    pub async fn gateway_faults(&self, faults: Value) {
        let key = self.env.iter().find(|(k, _)| k == "GATEWAY_API_KEY").map(|(_, v)| v.clone()).unwrap_or_else(|| {
            billing_testkit::test_settings(ServiceKind::Payment, &[])
                .gateway
                .map(|g| g.api_key.expose().clone())
                .unwrap_or_default()
        });
        let res = self
            .http
            .post(format!("{}/_simulator/faults", self.gateway_url()))
            .bearer_auth(key)
            .json(&faults)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(res.status().is_success(), "faults: {}", res.status());
    }

    /// Every log line the processes wrote.
    pub fn logs(&self) -> String {
        std::fs::read_dir(self.logs.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
            .collect()
    }

    pub async fn status(&self, token: &str, id: &str) -> String {
        self.call(&self.sub_url, Method::GET, &format!("/v1/subscriptions/{id}"), Some(token), None).await.1["data"]["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for name in PROCESSES {
            self.stop(name);
        }
        // A job that failed for good is work lost: no journey may end with one.
        if !std::thread::panicking() {
            let failed = billing_testkit::failed_jobs(self._redis.url(), &self._redis.prefix, &QueueName::ALL);
            assert!(failed.is_empty(), "failed jobs left behind: {failed:#?}");
        }
    }
}
