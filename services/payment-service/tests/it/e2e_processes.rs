//! Seed 003's journey against both services and both workers running as processes, the way env-manager.sh runs
//! them, including the subscription service being down while a payment succeeds.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use billing_testkit::{TestDb, TestRedis, poll_until, repo_root};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common;

use common::{PAY, SUB};

fn binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join(name)).unwrap_or_else(|| PathBuf::from(name))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every process `env-manager.sh start` runs in development.
const PROCESSES: [&str; 5] =
    ["gateway-simulator", "subscription-service", "subscription-worker", "payment-service", "payment-worker"];

struct System {
    env: Vec<(String, String)>,
    logs: tempfile::TempDir,
    sub_url: String,
    pay_url: String,
    procs: std::collections::HashMap<&'static str, Child>,
    http: reqwest::Client,
    _dbs: (TestDb, TestDb),
    _redis: TestRedis,
}

impl System {
    async fn start() -> Self {
        let (sub_db, pay_db, redis) = (TestDb::new(SUB).await, TestDb::new(PAY).await, TestRedis::new());
        let (sub_port, pay_port, gateway_port) = (free_port(), free_port(), free_port());
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
            _dbs: (sub_db, pay_db),
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

    fn spawn(&mut self, name: &'static str) {
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

    fn stop(&mut self, name: &str) {
        if let Some(mut child) = self.procs.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_healthy(&self, base: &str) {
        let url = format!("{base}/v1/health/detailed");
        poll_until(Duration::from_secs(30), "a service to be healthy", || async {
            self.http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
    }

    async fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }

    /// register → trial → use a feature → create the paid subscription: (token, trial id, subscription id, invoice id).
    async fn journey_to_payment(&self) -> (String, String, String, String) {
        let email = format!("e2e{}@example.com", uuid::Uuid::new_v4().simple());
        let (s, reg) = self
            .call(
                &self.sub_url,
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": "SecurePassword123!"})),
            )
            .await;
        assert_eq!(s, 201, "{reg}");
        let token = reg["data"]["access_token"].as_str().unwrap_or_default().to_owned();
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

    async fn pay(&self, token: &str, sub: &str, card: &str) -> (u16, Value) {
        let body = json!({"subscription_id": sub, "amount": 29.99, "currency": "USD", "card_number": card, "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "John Doe"});
        self.call(&self.pay_url, Method::POST, "/v1/payments/process", Some(token), Some(body)).await
    }

    fn gateway_url(&self) -> String {
        let port = self.env.iter().find(|(k, _)| k == "GATEWAY_PORT").map(|(_, v)| v.clone()).unwrap_or_default();
        format!("http://127.0.0.1:{port}")
    }

    /// An administrator's access token (made in the subscription database, signed in over HTTP).
    async fn admin(&self) -> String {
        use diesel_async::AsyncConnection;
        let mut conn =
            diesel_async::AsyncPgConnection::establish(&self._dbs.0.url).await.unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::ensure_admin(&mut conn, "ops@example.com", "ops pass 12345")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body = json!({"email": "ops@example.com", "password": "ops pass 12345"});
        let (status, login) = self.call(&self.sub_url, Method::POST, "/v1/auth/login", None, Some(body)).await;
        assert_eq!(status, 200, "{login}");
        login["data"]["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// Every log line the processes wrote.
    fn logs(&self) -> String {
        std::fs::read_dir(self.logs.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
            .collect()
    }

    async fn status(&self, token: &str, id: &str) -> String {
        self.call(&self.sub_url, Method::GET, &format!("/v1/subscriptions/{id}"), Some(token), None).await.1["data"]["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for name in PROCESSES {
            self.stop(name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_003_journey_with_both_services_and_workers_as_processes() {
    let sys = System::start().await;
    let (token, trial, sub, invoice) = sys.journey_to_payment().await;
    let (status, paid) = sys.pay(&token, &sub, "4242424242424242").await;
    assert_eq!((status, paid["data"]["status"].as_str()), (201, Some("success")), "{paid}");
    poll_until(Duration::from_secs(10), "the subscription to become active", || async {
        (sys.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    assert_eq!(sys.status(&token, &trial).await, "canceled", "the trial is ended");
    let (_, inv) = sys.call(&sys.sub_url, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None).await;
    assert_eq!(inv["data"]["status"], "paid");
    let (_, history) = sys.call(&sys.pay_url, Method::GET, "/v1/payments/history", Some(&token), None).await;
    assert_eq!(
        history["data"]["items"][0]["transaction_id"].as_str().or(history["data"]["items"][0]["id"].as_str()),
        paid["data"]["transaction_id"].as_str()
    );

    // The same with the declined card: 402, and the subscription stays pending.
    let (token, _, sub, _) = sys.journey_to_payment().await;
    let (status, declined) = sys.pay(&token, &sub, "4000000000000002").await;
    assert_eq!((status, declined["code"].as_str()), (402, Some("payment_declined")));
    assert_eq!(sys.status(&token, &sub).await, "pending");

    // Neither card number nor the CVV reached a log line of any process.
    let logs = sys.logs();
    assert!(
        logs.contains("payment succeeded") || logs.contains("request completed"),
        "the processes logged (search sanity): {}",
        &logs[..logs.len().min(1500)]
    );
    for secret in ["4242424242424242", "4000000000000002", "card_cvv"] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }

    // A reused refresh token revokes its user's access tokens in the other service's process too.
    let body = json!({"email": "revoked@example.com", "password": "SecurePassword123!"});
    let (_, reg) = sys.call(&sys.sub_url, Method::POST, "/v1/auth/register", None, Some(body)).await;
    let first = reg["data"]["refresh_token"].clone();
    let (_, rotated) =
        sys.call(&sys.sub_url, Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    let access = rotated["data"]["access_token"].as_str().unwrap_or_default().to_owned();
    let sys = &sys;
    let history =
        async |token: &str| sys.call(&sys.pay_url, Method::GET, "/v1/payments/history", Some(token), None).await.0;
    assert_eq!(history(&access).await, 200);
    let (reused, _) =
        sys.call(&sys.sub_url, Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(reused, 401);
    poll_until(Duration::from_secs(15), "the payment service to refuse the revoked token", || async {
        (history(&access).await == 401).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_while_the_subscription_service_is_down_applies_when_it_returns() {
    let mut sys = System::start().await;
    let (token, _, sub, _) = sys.journey_to_payment().await;
    // Hold the webhook back, pay, take the subscription service down, then let the worker try to deliver.
    sys.stop("payment-worker");
    let (status, paid) = sys.pay(&token, &sub, "4242424242424242").await;
    assert_eq!(status, 201, "{paid}");
    sys.stop("subscription-service");
    sys.spawn("payment-worker");
    let pay_db = sys._dbs.1.url.clone();
    let deliveries = |ok: bool| {
        let sql = format!("SELECT count(*) AS n FROM webhook_deliveries WHERE delivered = {ok}");
        let url = pay_db.clone();
        async move {
            use diesel_async::{AsyncConnection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut conn = diesel_async::AsyncPgConnection::establish(&url).await.ok()?;
            diesel::sql_query(sql).get_result::<N>(&mut conn).await.ok().map(|r| r.n)
        }
    };
    poll_until(Duration::from_secs(20), "a failed delivery attempt", || async {
        deliveries(false).await.filter(|n| *n > 0).map(|_| ())
    })
    .await;

    sys.spawn("subscription-service");
    sys.wait_healthy(&sys.sub_url.clone()).await;
    poll_until(Duration::from_secs(30), "the subscription to become active, nobody acting", || async {
        (sys.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    assert_eq!(deliveries(true).await, Some(1), "delivered once it was back");
}

/// The defect that started the gateway's move to its own process: charges made by `payment-service serve`,
/// refunds run by `payment-service worker`. With the gateway remembering its charges, a partial and a full refund
/// succeed across the processes and each issues its credit note; a restart of the gateway in between loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_made_by_the_worker_process_succeed_with_their_credit_notes() {
    let mut sys = System::start().await;
    let (token, _, sub, invoice) = sys.journey_to_payment().await;
    let (status, paid) = sys.pay(&token, &sub, "4242424242424242").await;
    assert_eq!(status, 201, "{paid}");
    let tx = paid["data"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    poll_until(Duration::from_secs(10), "the subscription to become active", || async {
        (sys.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    let admin = sys.admin().await;
    // The gateway is restarted between the charge and the refunds: its journal keeps the charge.
    sys.stop("gateway-simulator");
    sys.spawn("gateway-simulator");
    sys.wait_healthy(&sys.gateway_url()).await;

    let path = format!("/v1/payments/{tx}/refund");
    let (status, partial) =
        sys.call(&sys.pay_url, Method::POST, &path, Some(&admin), Some(json!({"amount": "9.99"}))).await;
    assert_eq!(status, 202, "{partial}");
    let (status, rest) = sys.call(&sys.pay_url, Method::POST, &path, Some(&admin), None).await;
    assert_eq!((status, rest["data"]["amount"].as_str()), (202, Some("20.00")), "{rest}");
    let notes = poll_until(Duration::from_secs(20), "two credit notes on the invoice", || async {
        let (_, inv) =
            sys.call(&sys.sub_url, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None).await;
        (inv["data"]["credit_notes"].as_array().map(Vec::len) == Some(2)).then_some(inv["data"].clone())
    })
    .await;
    assert_eq!(notes["amount_credited"], "29.99", "{notes}");
    let (_, history) = sys.call(&sys.pay_url, Method::GET, "/v1/payments/history", Some(&token), None).await;
    let refunds = history["data"]["items"][0]["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 2);
    assert!(refunds.iter().all(|r| r["status"] == "succeeded"), "{refunds:?}");
}
