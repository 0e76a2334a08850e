//! A whole billing system on a test clock, in process: the subscription service and the payment service (told each
//! other's address), both workers (consumers, scheduler ticks, outbox relays), one Redis prefix so every part
//! reads the same clock, and the gateway simulator on its own port. Time moves only when a test says so.
//!
//! Shared by the billing-cycle tests and the simulation; each uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use billing_queue::Queue;
use billing_runtime::Service;
use billing_testkit::{TestApp, poll_until};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use payment_service::PaymentService;
use reqwest::Method;
use serde_json::{Value, json};
use subscription_service::SubscriptionService;
use subscription_service::services::billing::Report;
use subscription_service::state::AppState;

use crate::common::{PAY, SUB};

/// A customer: their access token and id.
#[derive(Debug, Clone)]
pub struct Customer {
    pub token: String,
    pub id: String,
    pub email: String,
}

pub struct Clocked {
    pub sub: TestApp,
    pub pay: TestApp,
    pub state: AppState,
    pub admin: String,
    pub gateway: billing_testkit::Gateway,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

pub const GOOD_CARD: &str = "4242424242424242";
pub const SOFT_DECLINE: &str = "4000000000009995";
pub const HARD_DECLINE: &str = "4000000000000002";

fn stop_signal() -> (tokio::sync::oneshot::Sender<()>, billing_runtime::ShutdownSignal) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    (
        stop,
        Box::pin(async move {
            let _ = stopped.await;
        }),
    )
}

impl Clocked {
    /// Both services and workers with the default configuration.
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    /// Both services and workers, with extra configuration for both.
    pub async fn with(overrides: &[(&str, String)]) -> Self {
        let sub_listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("a free port: {e:?}"));
        let pay_listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("a free port: {e:?}"));
        let sub_url = format!("http://{}", sub_listener.local_addr().unwrap_or_else(|e| panic!("address: {e:?}")));
        let pay_url = format!("http://{}", pay_listener.local_addr().unwrap_or_else(|e| panic!("address: {e:?}")));
        let prefix = format!("t:{}:", uuid::Uuid::new_v4().simple());
        let gateway = billing_testkit::Gateway::start();
        gateway.send_events_to(&pay_url);
        let mut common = vec![
            gateway.setting(),
            ("TEST_CLOCK", "true".to_owned()),
            ("REDIS_KEY_PREFIX", prefix),
            ("SUBSCRIPTION_SERVICE_URL", sub_url),
            ("PAYMENT_SERVICE_URL", pay_url),
        ];
        common.extend(overrides.iter().cloned());
        let sub = TestApp::spawn_on::<SubscriptionService>(SUB, &common, sub_listener).await;
        let pay = TestApp::spawn_on::<PaymentService>(PAY, &common, pay_listener).await;
        let mut conn = AsyncPgConnection::establish(&sub.db.url).await.unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::seed_catalog(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::ensure_admin(&mut conn, "ops@example.com", "ops pass 12345")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let state = subscription_service::build_state(&sub.infra).unwrap_or_else(|e| panic!("{e}"));
        let mut stops = Vec::new();
        let (stop, signal) = stop_signal();
        tokio::spawn(SubscriptionService::worker(sub.infra.clone(), signal));
        stops.push(stop);
        let (stop, signal) = stop_signal();
        tokio::spawn(PaymentService::worker(pay.infra.clone(), signal));
        stops.push(stop);
        let mut world = Self { sub, pay, state, admin: String::new(), gateway, stops };
        world.admin = world.login("ops@example.com", "ops pass 12345").await;
        world
    }

    pub async fn call(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        app.api().send(method, path, token, body).await.pair()
    }

    pub async fn sub_call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        self.call(&self.sub, method, path, Some(token), body).await
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(&self.sub, Method::POST, "/v1/auth/login", None, Some(json!({"email": email, "password": password})))
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// A new registered customer.
    pub async fn customer(&self) -> Customer {
        let email = format!("c{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, body) = self
            .call(
                &self.sub,
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": "sturdy pass 42"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Customer {
            token: body["data"]["access_token"].as_str().unwrap_or_default().to_owned(),
            id: body["data"]["user_id"].as_str().unwrap_or_default().to_owned(),
            email,
        }
    }

    /// Logs `customer` in again (access tokens expire in real time; the clock may have moved far).
    pub async fn relogin(&self, customer: &mut Customer) {
        customer.token = self.login(&customer.email, "sturdy pass 42").await;
    }

    /// Subscribes `customer` to `plan` and pays the first invoice with `card` (saved for renewals); the
    /// subscription id once it is active.
    pub async fn subscribe(&self, customer: &Customer, plan: i64, quantity: i64, card: &str) -> String {
        let (status, created) = self
            .sub_call(
                Method::POST,
                "/v1/subscriptions",
                &customer.token,
                Some(json!({"plan_id": plan, "quantity": quantity})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["data"]["id"].as_str().unwrap_or_default().to_owned();
        let body = json!({
            "invoice_id": created["data"]["invoice_id"], "amount": created["data"]["amount"],
            "currency": created["data"]["currency"], "card_number": card, "card_expiry": "12/40", "card_cvv": "123",
            "cardholder_name": "Ada Lovelace",
        });
        let (status, paid) =
            self.call(&self.pay, Method::POST, "/v1/payments/process", Some(&customer.token), Some(body)).await;
        assert_eq!(status, 201, "{paid}");
        self.wait_status(customer, &id, "active").await;
        id
    }

    /// Saves `card` as the customer's default payment method.
    pub async fn save_card(&self, customer: &Customer, card: &str) {
        let body =
            json!({"card_number": card, "card_expiry": "12/40", "card_cvv": "123", "cardholder_name": "Ada Lovelace"});
        let (status, saved) =
            self.call(&self.pay, Method::POST, "/v1/payment-methods", Some(&customer.token), Some(body)).await;
        assert_eq!(status, 201, "{saved}");
    }

    /// The subscription as its owner sees it.
    pub async fn subscription(&self, customer: &Customer, id: &str) -> Value {
        let (status, body) =
            self.sub_call(Method::GET, &format!("/v1/subscriptions/{id}"), &customer.token, None).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    /// The event types of a subscription, oldest first.
    pub async fn events(&self, customer: &Customer, id: &str) -> Vec<String> {
        let (status, body) =
            self.sub_call(Method::GET, &format!("/v1/subscriptions/{id}/events"), &customer.token, None).await;
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .map(|events| events.iter().filter_map(|e| e["event_type"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The customer's invoices, newest first.
    pub async fn invoices(&self, customer: &Customer) -> Vec<Value> {
        let (status, body) = self.sub_call(Method::GET, "/v1/invoices/me", &customer.token, None).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The customer's first invoice of `kind` once it is paid (its charge applied).
    pub async fn paid_invoice(&self, customer: &Customer, kind: &str) -> Value {
        poll_until(Duration::from_secs(20), &format!("the {kind} invoice to be paid"), || async {
            self.invoices(customer).await.into_iter().find(|i| i["kind"] == kind && i["status"] == "paid")
        })
        .await
    }

    pub async fn wait_status(&self, customer: &Customer, id: &str, status: &str) -> Value {
        poll_until(Duration::from_secs(20), &format!("subscription {id} to be {status}"), || async {
            let sub = self.subscription(customer, id).await;
            (sub["status"] == status).then_some(sub)
        })
        .await
    }

    /// Moves every process's clock forward.
    pub async fn advance(&self, by: chrono::Duration) {
        let clock = self.sub.infra.test_clock.as_ref().unwrap_or_else(|| panic!("the test clock is off"));
        clock.advance(by.num_milliseconds()).await.unwrap_or_else(|e| panic!("{e}"));
        let other = self.pay.infra.test_clock.as_ref().unwrap_or_else(|| panic!("the test clock is off"));
        other.refresh().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Moves every process's clock forward to `at`.
    pub async fn advance_to(&self, at: chrono::DateTime<chrono::Utc>) {
        self.advance(at - self.now()).await;
    }

    /// Now, by the shared clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.state.now()
    }

    /// Runs the billing tick once (the worker's scheduler runs it too, under its lease).
    pub async fn tick(&self) -> Report {
        subscription_service::services::billing::run_due(&self.state).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the tick twice and waits until every job and outbox row it caused is done.
    pub async fn cycle(&self) -> Report {
        let mut done = self.tick().await;
        self.settle().await;
        done += self.tick().await;
        self.settle().await;
        done
    }

    /// Waits until no queue holds work and no outbox row is unsent, seen twice in a row (a job between two lists,
    /// claimed or pushed by a relay, is not missed).
    pub async fn settle(&self) {
        let queues: Vec<Queue> = SubscriptionService::QUEUES
            .iter()
            .map(|q| Queue::new(self.sub.infra.redis.clone(), *q))
            .chain(PaymentService::QUEUES.iter().map(|q| Queue::new(self.pay.infra.redis.clone(), *q)))
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut quiet = 0;
        while quiet < 2 {
            match self.busy(&queues).await {
                Some(what) => {
                    quiet = 0;
                    assert!(std::time::Instant::now() < deadline, "still busy after 60 s: {what}");
                }
                None => quiet += 1,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What is still in flight, if anything.
    async fn busy(&self, queues: &[Queue]) -> Option<String> {
        for queue in queues {
            let stats = queue.stats().await.unwrap_or_else(|e| panic!("{e}"));
            if stats.pending + stats.processing + stats.delayed > 0 {
                return Some(format!("{} {stats:?}", queue.name()));
            }
        }
        for (name, pool) in [("subscription", &self.sub.infra.db), ("payment", &self.pay.infra.db)] {
            let mut conn = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
            let pending = billing_queue::outbox::pending(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
            if pending > 0 {
                return Some(format!("{pending} outbox rows unsent in the {name} database"));
            }
        }
        None
    }

    /// Every failed (dead-letter) job of both services, as `queue: error`.
    pub async fn failed_jobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (redis, queues) in
            [(&self.sub.infra.redis, SubscriptionService::QUEUES), (&self.pay.infra.redis, PaymentService::QUEUES)]
        {
            for name in queues {
                let queue = Queue::new(redis.clone(), *name);
                for job in queue.failed_page(0, 1000).await.unwrap_or_else(|e| panic!("{e}")) {
                    out.push(format!("{}: {job:?}", name.as_str()));
                }
            }
        }
        out
    }

    /// A connection to the subscription database.
    pub async fn sub_db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.sub.db.url).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A connection to the payment database.
    pub async fn pay_db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.pay.db.url).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a plan through the admin API; its id.
    pub async fn plan(&self, body: Value) -> i64 {
        let (status, plan) = self.sub_call(Method::POST, "/v1/admin/plans", &self.admin, Some(body)).await;
        assert_eq!(status, 201, "{plan}");
        plan["data"]["id"].as_i64().unwrap_or_default()
    }
}

impl Drop for Clocked {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}
