//! Shared set-up for the subscription service's API tests.
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use billing_config::ServiceKind;
pub use billing_testkit::Answer;
use billing_testkit::{MigrationSet, TestApp};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use subscription_service::{MIGRATIONS, SubscriptionService};

pub const SET: MigrationSet = MigrationSet { service: ServiceKind::Subscription, embedded: || MIGRATIONS };

/// A running subscription service with the seed catalog (plans 1–5) and an admin.
pub struct Ctx {
    pub app: TestApp,
    pub admin: String,
}

impl Ctx {
    pub async fn new() -> Self {
        let app = TestApp::spawn::<SubscriptionService>(SET).await;
        let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::seed_catalog(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::ensure_admin(&mut conn, "root@example.com", "admin pass 1234")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ctx = Ctx { app, admin: String::new() };
        let login = ctx.login("root@example.com", "admin pass 1234").await;
        assert_eq!(login.status, 200, "{}", login.body);
        ctx.admin = login.data()["access_token"].as_str().unwrap_or_default().to_owned();
        ctx
    }

    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut req = self.app.client.request(method, self.app.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.app.api().send(method, path, token, body).await
    }

    /// `POST /v1/auth/register`.
    pub async fn register(&self, email: &str, password: &str) -> Answer {
        self.call(Method::POST, "/v1/auth/register", None, Some(json!({"email": email, "password": password}))).await
    }

    /// `POST /v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.call(Method::POST, "/v1/auth/login", None, Some(json!({"email": email, "password": password}))).await
    }

    /// Registers a new user and returns its access token.
    pub async fn user(&self) -> String {
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        let res = self
            .call(Method::POST, "/v1/auth/register", None, Some(json!({"email": email, "password": "sturdy pass 42"})))
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        res.data()["access_token"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn sql(&self, statement: &str) {
        let mut conn = AsyncPgConnection::establish(&self.app.db.url).await.unwrap_or_else(|e| panic!("{e}"));
        diesel::sql_query(statement).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Test fixture until payments exist: the subscription's first invoice is paid and the period starts at
    /// `start` (an instant in the past places "now" inside the period). The change is made behind the service's
    /// back, as another process would make it, so this waits until the owner (`token`) sees it.
    pub async fn activate(&self, token: &str, subscription: &str, start: &str, end: &str) {
        self.sql(&format!(
            "UPDATE subscriptions SET status = 'active', billing_anchor = '{start}', current_period_start = '{start}', \
             current_period_end = '{end}', version = version + 1 WHERE id = '{subscription}'"
        ))
        .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mine = self.call(Method::GET, "/v1/subscriptions/me", Some(token), None).await;
            let seen = mine
                .data()
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["id"] == subscription && s["status"] == "active");
            if seen {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the activation was not seen: {}", mine.body);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// A user with an active subscription to `plan_id`, its period placed around now.
    pub async fn active_subscriber(&self, plan_id: i32, quantity: i32) -> (String, String) {
        let token = self.user().await;
        let res = self
            .call(
                Method::POST,
                "/v1/subscriptions",
                Some(&token),
                Some(json!({"plan_id": plan_id, "quantity": quantity})),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        let id = res.data()["id"].as_str().unwrap_or_default().to_owned();
        let start = chrono::Utc::now() - chrono::Duration::days(10);
        let end = start + chrono::Duration::days(30);
        self.activate(&token, &id, &start.to_rfc3339(), &end.to_rfc3339()).await;
        (token, id)
    }
}
