//! The simulator as a process: the Stripe-shaped API, test cards, idempotency, refunds, and nothing lost across
//! a kill and restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const KEY: &str = "sk_test_simulator_process_test_key_000000001";

struct Sim {
    child: Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

async fn start(journal: &std::path::Path, port: u16) -> Sim {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/environments");
    let child = Command::new(env!("CARGO_BIN_EXE_gateway-simulator"))
        .env_clear()
        .env("APP_ENV", "test")
        .env("CONFIG_DIR", config)
        .env("GATEWAY_PORT", port.to_string())
        .env("GATEWAY_API_KEY", KEY)
        .env("GATEWAY_SIMULATOR_JOURNAL", journal)
        .env("GATEWAY_SIMULATOR_WEBHOOK_URL", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let sim = Sim { child, url: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    while reqwest::get(format!("{}/v1/health", sim.url)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the simulator did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim
}

async fn post(sim: &Sim, path: &str, key: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}{path}", sim.url)).bearer_auth(KEY).form(form);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

async fn get(sim: &Sim, path: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", sim.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

async fn card(sim: &Sim, number: &str) -> String {
    let form = [
        ("type", "card"),
        ("card[number]", number),
        ("card[exp_month]", "12"),
        ("card[exp_year]", "2030"),
        ("card[cvc]", "123"),
    ];
    let (status, pm) = post(sim, "/v1/payment_methods", None, &form).await;
    assert_eq!(status, 200, "{pm}");
    pm["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn charges_refunds_and_keys_survive_a_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let journal = dir.path().join("journal.jsonl");
    let port = free_port();
    let sim = start(&journal, port).await;

    // Authentication as Stripe: a missing or wrong key is 401 with an error object.
    let res = reqwest::Client::new().get(format!("{}/v1/payment_intents/pi_x", sim.url)).send().await;
    assert_eq!(res.map(|r| r.status().as_u16()).ok(), Some(401));

    let pm = card(&sim, "4242424242424242").await;
    let pay = [("amount", "2999"), ("currency", "usd"), ("payment_method", pm.as_str()), ("confirm", "true")];
    let (status, pi) = post(&sim, "/v1/payment_intents", Some("order-1"), &pay).await;
    assert_eq!((status, pi["status"].as_str(), pi["amount"].as_i64()), (200, Some("succeeded"), Some(2999)), "{pi}");
    let pi_id = pi["id"].as_str().unwrap_or_default().to_owned();
    let (status, again) = post(&sim, "/v1/payment_intents", Some("order-1"), &pay).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(pi_id.as_str())), "the same key, the same intent");
    let other = [("amount", "1000"), ("currency", "usd"), ("payment_method", pm.as_str()), ("confirm", "true")];
    let (status, reused) = post(&sim, "/v1/payment_intents", Some("order-1"), &other).await;
    assert_eq!((status, reused["error"]["type"].as_str()), (400, Some("idempotency_error")));

    // Test cards decline as documented, with Stripe's error object.
    let declining = card(&sim, "4000000000009995").await;
    let form = [("amount", "2999"), ("currency", "usd"), ("payment_method", declining.as_str()), ("confirm", "true")];
    let (status, declined) = post(&sim, "/v1/payment_intents", Some("order-2"), &form).await;
    assert_eq!(status, 402);
    assert_eq!(declined["error"]["decline_code"], "insufficient_funds", "{declined}");
    assert_eq!(declined["error"]["payment_intent"]["status"], "requires_payment_method");

    let (status, refund) =
        post(&sim, "/v1/refunds", Some("refund-1"), &[("payment_intent", &pi_id), ("amount", "1000")]).await;
    assert_eq!((status, refund["status"].as_str()), (200, Some("succeeded")), "{refund}");

    // Killed without warning, then started again on the same journal: everything answered is still there.
    drop(sim);
    let sim = start(&journal, port).await;
    let (status, kept) = get(&sim, &format!("/v1/payment_intents/{pi_id}")).await;
    assert_eq!((status, kept["status"].as_str()), (200, Some("succeeded")));
    let (_, replay) = post(&sim, "/v1/payment_intents", Some("order-1"), &pay).await;
    assert_eq!(replay["id"].as_str(), Some(pi_id.as_str()), "an idempotency key outlives a restart");
    let refund_id = refund["id"].as_str().unwrap_or_default();
    assert_eq!(get(&sim, &format!("/v1/refunds/{refund_id}")).await.0, 200);
    // The rest of the charge is refundable, and no more.
    let (status, rest) = post(&sim, "/v1/refunds", Some("refund-2"), &[("payment_intent", &pi_id)]).await;
    assert_eq!((status, rest["amount"].as_i64()), (200, Some(1999)), "{rest}");
    let (status, none) = post(&sim, "/v1/refunds", Some("refund-3"), &[("payment_intent", &pi_id)]).await;
    assert_eq!((status, none["error"]["code"].as_str()), (400, Some("charge_already_refunded")));
    let (_, stats) = get(&sim, "/_simulator/stats").await;
    assert_eq!((stats["payment_intents"].as_i64(), stats["refunds"].as_i64()), (Some(2), Some(2)), "{stats}");
}
