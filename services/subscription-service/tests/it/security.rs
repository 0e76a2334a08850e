//! The findings of the attacker's review, each proved fixed: published keys refused when deployed, no panic on a
//! crafted signature timestamp, an atomic login limit, revocation of access tokens, closed bodies, and bounded
//! password hashing measured on the service as a process.

use std::path::Path;
use std::time::Duration;

use billing_testkit::process::{self, ServiceProcess};
use billing_testkit::{TestDb, poll_until};
use reqwest::Method;
use serde_json::json;

use crate::common::{self, Ctx};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_subscription-service"))
}

#[test]
fn check_config_refuses_every_published_key_and_secret_in_staging_and_production() {
    process::assert_deployed_config_refuses_published_values(
        binary(),
        &[
            "JWT_PUBLIC_KEY",
            "JWT_PRIVATE_KEY",
            "WEBHOOK_SECRETS",
            "INTERNAL_SUB_TO_PAY_SECRETS",
            "INTERNAL_PAY_TO_SUB_SECRETS",
            "PG_PASSWORD",
        ],
    );
    // A public key that is not the private key's half: tokens issued here would verify nowhere (or, worse, the
    // public key is someone else's).
    for env in ["staging", "production"] {
        let mut vars = process::deployed_env(env);
        vars.push(("JWT_PUBLIC_KEY".into(), "MCowBQYDK2VwAyEAq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c=".into()));
        let (ok, out) = process::check_config(binary(), &vars);
        assert!(!ok && out.contains("does not belong to JWT_PRIVATE_KEY"), "{env}: {out}");
    }
}

#[tokio::test]
async fn a_crafted_signature_timestamp_is_a_400_not_a_panic() {
    let ctx = Ctx::new().await;
    for timestamp in ["-9223372036854775808", "9223372036854775807", "-1"] {
        let res = ctx
            .app
            .client
            .post(ctx.app.url("/v1/webhooks/payment"))
            .header("content-type", "application/json")
            .header("x-webhook-id", "evt_x")
            .header("x-webhook-timestamp", timestamp)
            .header("x-webhook-signature", format!("sha256={}", "0".repeat(64)))
            .body("{}")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{timestamp}: the connection failed: {e}"));
        assert_eq!(res.status().as_u16(), 400, "{timestamp}");
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(body["code"], "stale_timestamp", "{timestamp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_cannot_pass_the_failed_login_limit() {
    let ctx = Ctx::new().await;
    ctx.register("mallory@example.com", "sturdy pass 42").await;
    for i in 0..9 {
        assert_eq!(ctx.login("mallory@example.com", &format!("guess {i} x1")).await.status, 401);
    }
    // Five at once, the right password among them: only one more attempt fits in the window of ten.
    let passwords = ["burst 1 x", "burst 2 x", "sturdy pass 42", "burst 3 x", "burst 4 x"];
    let burst = futures_util::future::join_all(passwords.iter().map(|p| ctx.login("mallory@example.com", p))).await;
    let statuses: Vec<u16> = burst.iter().map(|a| a.status).collect();
    let judged = statuses.iter().filter(|s| **s != 429).count();
    assert_eq!(judged, 1, "one attempt judged, the rest refused: {statuses:?}");
    assert_eq!(ctx.login("mallory@example.com", "sturdy pass 42").await.status, 429, "the window is full");
}

async fn poll_status(ctx: &Ctx, path: &str, token: &str, want: u16) {
    poll_until(Duration::from_secs(15), &format!("{path} to answer {want}"), || async {
        (ctx.call(Method::GET, path, Some(token), None).await.status == want).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_demoted_administrator_loses_the_role_within_the_revocation_delay() {
    let ctx = Ctx::new().await;
    let reg = ctx.register("deputy@example.com", "sturdy pass 42").await;
    let id = reg.data()["user_id"].as_str().unwrap_or_default().to_owned();
    let promoted = ctx
        .call(Method::PUT, &format!("/v1/admin/users/{id}/role"), Some(&ctx.admin), Some(json!({"role": "admin"})))
        .await;
    assert_eq!((promoted.status, promoted.data()["role"].as_str()), (200, Some("admin")), "{}", promoted.body);
    let deputy = ctx.login("deputy@example.com", "sturdy pass 42").await;
    let token = deputy.data()["access_token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(ctx.call(Method::GET, "/v1/admin/queues", Some(&token), None).await.status, 200);

    let user_token = ctx.user().await;
    let refused = ctx
        .call(Method::PUT, &format!("/v1/admin/users/{id}/role"), Some(&user_token), Some(json!({"role": "user"})))
        .await;
    assert_eq!(refused.status, 403, "only administrators change roles");
    let demoted = ctx
        .call(Method::PUT, &format!("/v1/admin/users/{id}/role"), Some(&ctx.admin), Some(json!({"role": "user"})))
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    // The old token (role admin inside) stops working everywhere; a new one carries the new role.
    poll_status(&ctx, "/v1/auth/me", &token, 401).await;
    let again = ctx.login("deputy@example.com", "sturdy pass 42").await;
    let fresh = again.data()["access_token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(ctx.call(Method::GET, "/v1/auth/me", Some(&fresh), None).await.data()["role"], "user");
    assert_eq!(ctx.call(Method::GET, "/v1/admin/queues", Some(&fresh), None).await.status, 403);
    let unknown = ctx
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", uuid::Uuid::new_v4()),
            Some(&ctx.admin),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "user_not_found"));
    let bad = ctx
        .call(Method::PUT, &format!("/v1/admin/users/{id}/role"), Some(&ctx.admin), Some(json!({"role": "owner"})))
        .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test]
async fn a_reused_refresh_token_also_ends_the_access_tokens_it_minted() {
    let ctx = Ctx::new().await;
    let reg = ctx.register("stolen@example.com", "sturdy pass 42").await;
    let first = reg.data()["refresh_token"].as_str().unwrap_or_default().to_owned();
    let rotated = ctx.call(Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    let access = rotated.data()["access_token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(ctx.call(Method::GET, "/v1/auth/me", Some(&access), None).await.status, 200);
    let reused = ctx.call(Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(reused.status, 401);
    poll_status(&ctx, "/v1/auth/me", &access, 401).await;
    let res = ctx.call(Method::GET, "/v1/auth/me", Some(&access), None).await;
    assert_eq!(res.code(), "token_revoked");
    // Signing in again works.
    assert_eq!(ctx.login("stolen@example.com", "sturdy pass 42").await.status, 200);
}

#[tokio::test]
async fn bodies_are_json_objects_never_the_sequence_form_of_a_struct() {
    let ctx = Ctx::new().await;
    ctx.register("seq@example.com", "sturdy pass 42").await;
    let token = ctx.user().await;
    for (path, token, body) in [
        ("/v1/subscriptions", Some(token.as_str()), json!([2, 1])),
        ("/v1/auth/login", None, json!(["seq@example.com", "sturdy pass 42"])),
        ("/v1/auth/register", None, json!(["seq2@example.com", "sturdy pass 42", "A", "B"])),
    ] {
        let res = ctx.call(Method::POST, path, token, Some(body)).await;
        assert_eq!((res.status, res.code()), (422, "validation_failed"), "{path}: {}", res.body);
        assert_eq!(res.body["details"]["fields"]["body"], "must be a JSON object", "{path}");
    }
    let mine = ctx.call(Method::GET, "/v1/subscriptions/me", Some(&token), None).await;
    assert_eq!(mine.data().as_array().map(Vec::len), Some(0), "nothing was created");
}

#[tokio::test]
async fn plan_prices_with_more_digits_than_the_currency_or_spaces_are_refused() {
    let ctx = Ctx::new().await;
    for (price, currency) in [("29.990", "USD"), ("500.00", "JPY"), (" 29.99", "USD"), ("29.99 ", "USD")] {
        let res = ctx
            .call(
                Method::POST,
                "/v1/admin/plans",
                Some(&ctx.admin),
                Some(json!({"code": format!("p{}", uuid::Uuid::new_v4().simple()), "name": "P", "price": price,
                    "currency": currency, "billing_cycle": "monthly", "features": {}})),
            )
            .await;
        assert_eq!(res.status, 422, "{price:?} {currency}: {}", res.body);
        assert!(res.body["details"]["fields"]["price"].is_string(), "{}", res.body);
    }
}

/// Seeds `n` users sharing one password hash (computed once), so a burst of logins needs no registrations.
async fn users_with_one_password(db: &TestDb, n: usize, password: &str) -> Vec<String> {
    let hash = billing_auth::hash_password(password.to_owned()).await.unwrap_or_else(|e| panic!("{e}"));
    let emails: Vec<String> = (0..n).map(|i| format!("crowd{i}@example.com")).collect();
    let values: Vec<String> =
        emails.iter().map(|e| format!("('{}', '{e}', '{hash}', 'user')", uuid::Uuid::now_v7())).collect();
    let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sql = format!("INSERT INTO users (id, email, password_hash, role) VALUES {}", values.join(","));
    diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    emails
}

/// Peak resident memory allowed for the service process through 200 concurrent logins: one 19 MiB argon2 buffer
/// per core plus the process itself (about 20 MB idle in release, more in this debug build). Before the hashing
/// was bounded, 100 concurrent sign-ups took 2.3 GB.
const PEAK_RSS_BOUND_KIB: u64 = 160 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_logins_stay_within_a_memory_bound_and_reads_keep_answering() {
    let db = TestDb::new(common::SET).await;
    let emails = users_with_one_password(&db, 200, "crowd pass 42").await;
    let service = ServiceProcess::start(binary(), "serve", db, &[]).await;
    let http = reqwest::Client::new();
    let login = |email: String| {
        let http = http.clone();
        let url = format!("{}/v1/auth/login", service.url);
        async move {
            let res = http.post(url).json(&json!({"email": email, "password": "crowd pass 42"})).send().await;
            let res = res.unwrap_or_else(|e| panic!("{e}"));
            (res.status().as_u16(), res.headers().get("retry-after").is_some())
        }
    };
    let burst = tokio::spawn(futures_util::future::join_all(emails.into_iter().map(login)));
    // While the burst runs, a read route still answers promptly.
    let plans = format!("{}/v1/plans", service.url);
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let res = http.get(&plans).timeout(Duration::from_secs(5)).send().await;
        assert!(res.is_ok_and(|r| r.status().is_success()), "GET /v1/plans during the burst");
        assert!(started.elapsed() < Duration::from_secs(2), "a read waited {:?}", started.elapsed());
    }
    let answers = burst.await.unwrap_or_else(|e| panic!("{e}"));
    let signed_in = answers.iter().filter(|(s, _)| *s == 200).count();
    let shed = answers.iter().filter(|(s, retry)| *s == 503 && *retry).count();
    assert_eq!(signed_in + shed, 200, "every login is signed in or shed with Retry-After: {answers:?}");
    assert!(signed_in >= billing_auth::password::HASH_QUEUE, "{signed_in} signed in");
    let (rss, peak) = service.memory_kib();
    assert!(peak > 0, "the process's memory is readable");
    assert!(peak < PEAK_RSS_BOUND_KIB, "peak RSS {peak} KiB (now {rss} KiB) over {PEAK_RSS_BOUND_KIB} KiB");
}

async fn register_from(app: &billing_testkit::TestApp, n: usize, forwarded_for: &str) -> u16 {
    let body =
        json!({"email": format!("p{n}-{}@example.com", uuid::Uuid::new_v4().simple()), "password": "sturdy pass 42"});
    let res = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("x-forwarded-for", forwarded_for)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    res.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    use subscription_service::SubscriptionService;
    // No trusted proxy (the test environment's default): each request claims another address, all count as one.
    let app = billing_testkit::TestApp::spawn::<SubscriptionService>(common::SET).await;
    for n in 0..20 {
        assert_eq!(register_from(&app, n, &format!("198.51.100.{n}")).await, 201, "registration {n}");
    }
    assert_eq!(register_from(&app, 20, "198.51.100.99").await, 429, "the header did not buy another address");

    // Behind a trusted proxy (here, this machine), its header names the client: separate addresses, separate limits.
    let app = billing_testkit::TestApp::spawn_with::<SubscriptionService>(
        common::SET,
        &[("TRUSTED_PROXIES", "127.0.0.1/32".to_owned()), ("RATE_LIMIT_REGISTRATIONS_PER_HOUR", "2".to_owned())],
    )
    .await;
    for n in 0..2 {
        assert_eq!(register_from(&app, n, "198.51.100.1").await, 201);
    }
    assert_eq!(register_from(&app, 2, "198.51.100.1").await, 429, "the configured limit, per forwarded client");
    assert_eq!(register_from(&app, 3, "198.51.100.2").await, 201, "another client behind the proxy");
}
