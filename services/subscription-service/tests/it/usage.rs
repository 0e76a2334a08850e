//! `/v1/usage`: atomic limits, idempotency, durable folding into PostgreSQL, counter rebuilds.

use crate::common;

use std::time::Duration;

use common::Ctx;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;

#[derive(diesel::QueryableByName)]
struct Total {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs the usage sync (the `q:sub:usage_sync` job) and reads what PostgreSQL holds.
async fn folded(ctx: &Ctx, feature: &str) -> (i64, i64) {
    let state = subscription_service::build_state(&ctx.app.infra).unwrap_or_else(|e| panic!("{e}"));
    subscription_service::services::usage::sync(&state).await.unwrap_or_else(|e| panic!("{e}"));
    let mut conn = AsyncPgConnection::establish(&ctx.app.db.url).await.unwrap_or_else(|e| panic!("{e}"));
    let q = |sql: String| diesel::sql_query(sql);
    let counter =
        q(format!("SELECT COALESCE(SUM(used), 0)::bigint AS n FROM usage_counters WHERE feature = '{feature}'"))
            .get_result::<Total>(&mut conn)
            .await
            .map(|t| t.n)
            .unwrap_or(-1);
    let events =
        q(format!("SELECT COALESCE(SUM(delta), 0)::bigint AS n FROM usage_events WHERE feature = '{feature}'"))
            .get_result::<Total>(&mut conn)
            .await
            .map(|t| t.n)
            .unwrap_or(-1);
    (counter, events)
}

async fn trial_user(ctx: &Ctx) -> String {
    let token = ctx.user().await;
    let res = ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": 1}))).await;
    assert_eq!(res.status, 201);
    token
}

#[tokio::test]
async fn using_a_feature_counts_and_reports_limits() {
    let ctx = Ctx::new().await;
    let token = trial_user(&ctx).await;
    let res = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 1})))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let d = res.data();
    assert_eq!(
        (d["current_usage"].as_i64(), d["limit"].as_i64(), d["remaining"].as_i64()),
        (Some(1), Some(1000), Some(999))
    );
    assert!(d["reset_at"].is_string());
    let res = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 41})))
        .await;
    assert_eq!(res.data()["current_usage"], 42);

    let limits = ctx.call(Method::GET, "/v1/usage/limits", Some(&token), None).await;
    assert_eq!(limits.status, 200, "{}", limits.body);
    assert_eq!(limits.data()["plan_id"], 1);
    assert_eq!(limits.data()["limits"]["api_calls"], json!({"limit": 1000, "used": 42, "remaining": 958}));
    assert!(limits.data()["limits"].get("storage").is_none(), "informational features are not metered");
    assert_eq!(limits.data()["reset_at"], d["reset_at"]);
    let me = ctx.call(Method::GET, "/v1/usage/me", Some(&token), None).await;
    assert_eq!(me.data()["features"][0]["feature_name"], "api_calls");
    assert_eq!(me.data()["features"][0]["used"], 42);
}

#[tokio::test]
async fn the_limit_is_never_passed_and_a_refusal_consumes_nothing() {
    let ctx = Ctx::new().await;
    let token = trial_user(&ctx).await;
    let ok = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 995})))
        .await;
    assert_eq!(ok.status, 200);
    let over = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 6})))
        .await;
    assert_eq!((over.status, over.code()), (429, "usage_limit_exceeded"));
    assert_eq!(over.body["details"]["current_usage"], 995);
    assert_eq!(over.body["details"]["limit"], 1000);
    assert_eq!(over.body["details"]["feature_name"], "api_calls");
    assert!(over.body["details"]["reset_at"].is_string());
    // Like every 429, it says when to retry: the seconds left until the period resets (a 30-day trial here).
    let reset_at = chrono::DateTime::parse_from_rfc3339(over.body["details"]["reset_at"].as_str().unwrap_or(""))
        .map(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
        .unwrap_or(0);
    let retry: i64 =
        over.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(-1);
    assert!(retry > 0 && (retry - reset_at).abs() <= 5, "Retry-After {retry}, reset in {reset_at} s");
    let fits = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 5})))
        .await;
    assert_eq!((fits.status, fits.data()["remaining"].as_i64()), (200, Some(0)));
}

#[tokio::test]
async fn refusals_name_the_reason() {
    let ctx = Ctx::new().await;
    let nobody = ctx.user().await;
    let res = ctx.call(Method::POST, "/v1/usage/use", Some(&nobody), Some(json!({"feature_name": "api_calls"}))).await;
    assert_eq!((res.status, res.code()), (403, "no_active_subscription"));
    assert_eq!(ctx.call(Method::GET, "/v1/usage/limits", Some(&nobody), None).await.status, 403);
    let token = trial_user(&ctx).await;
    for feature in ["sso", "storage"] {
        let res = ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": feature}))).await;
        assert_eq!((res.status, res.code()), (403, "feature_not_in_plan"), "{feature}");
    }
    for body in [
        json!({"feature_name": "api_calls", "delta": 0}),
        json!({"feature_name": "api_calls", "delta": 1.5}),
        json!({"feature_name": "API CALLS"}),
        json!({"feature_name": "api_calls", "extra": 1}),
        json!({"delta": 1}),
    ] {
        let res = ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(body.clone())).await;
        assert_eq!((res.status, res.code()), (422, "validation_failed"), "{body}");
    }
    assert_eq!(
        ctx.call(Method::POST, "/v1/usage/use", None, Some(json!({"feature_name": "api_calls"}))).await.status,
        401
    );
    // A pending (unpaid) subscription gives no access.
    let pending = ctx.user().await;
    ctx.call(Method::POST, "/v1/subscriptions", Some(&pending), Some(json!({"plan_id": 2}))).await;
    let res = ctx.call(Method::POST, "/v1/usage/use", Some(&pending), Some(json!({"feature_name": "api_calls"}))).await;
    assert_eq!(res.code(), "no_active_subscription");
}

#[tokio::test]
async fn an_idempotency_key_counts_once_and_returns_the_first_answer() {
    let ctx = Ctx::new().await;
    let token = trial_user(&ctx).await;
    let body = json!({"feature_name": "api_calls", "delta": 10, "idempotency_key": "req-1"});
    let first = ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(body.clone())).await;
    ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 5}))).await;
    let replay = ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(body)).await;
    assert_eq!(first.data()["current_usage"], 10);
    assert_eq!(replay.data()["current_usage"], 10, "the first answer, not the current total");
    let limits = ctx.call(Method::GET, "/v1/usage/limits", Some(&token), None).await;
    assert_eq!(limits.data()["limits"]["api_calls"]["used"], 15);
    billing_testkit::poll_until(Duration::from_secs(10), "usage folded", || async {
        (folded(&ctx, "api_calls").await == (15, 15)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_never_pass_the_limit_and_every_accepted_unit_reaches_postgres() {
    let ctx = Ctx::new().await;
    let token = trial_user(&ctx).await;
    let answers = join_all((0..1100).map(|_| {
        let (client, url, token) = (ctx.app.client.clone(), ctx.app.url("/v1/usage/use"), token.clone());
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"feature_name": "api_calls", "delta": 1}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    }))
    .await;
    let ok = answers.iter().filter(|s| **s == 200).count();
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (ok, limited),
        (1000, 100),
        "other statuses: {:?}",
        answers.iter().filter(|s| **s != 200 && **s != 429).collect::<Vec<_>>()
    );
    let (counter, events) =
        billing_testkit::poll_until(Duration::from_secs(15), "1000 units folded into PostgreSQL", || async {
            let totals = folded(&ctx, "api_calls").await;
            (totals.0 == 1000).then_some(totals)
        })
        .await;
    assert_eq!((counter, events), (1000, 1000));
}

#[tokio::test]
async fn a_counter_lost_from_redis_is_rebuilt_from_postgres() {
    let ctx = Ctx::new().await;
    let token = trial_user(&ctx).await;
    ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 300})))
        .await;
    // Drop every usage counter (a Redis restart without persistence), keeping the stream of unfolded events.
    let client = redis::Client::open(ctx.app.redis.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}{{usage}}:c:*", ctx.app.redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    assert_eq!(keys.len(), 1, "{keys:?}");
    redis::cmd("DEL").arg(&keys).exec_async(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));

    let res = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 1})))
        .await;
    assert_eq!((res.status, res.data()["current_usage"].as_i64()), (200, Some(301)), "{}", res.body);
    let over = ctx
        .call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls", "delta": 700})))
        .await;
    assert_eq!(over.status, 429, "the rebuilt counter still enforces the limit");
}

#[tokio::test]
async fn entitlements_list_every_feature_of_the_plan_switches_limits_and_billed_usage() {
    let ctx = Ctx::new().await;
    let plan = json!({
        "code": "ent-trial", "name": "Entitled", "price": "0", "currency": "USD", "billing_cycle": "monthly",
        "is_trial_plan": true, "trial_period_days": 14,
        "features": {
            "api_calls": {"limit": 1000}, "sso": true, "audit_log": false, "storage": {"limit": "1GB"},
            "events": {"billing": "per_unit", "unit_amount": "0.001"},
        },
    });
    let created = ctx.call(Method::POST, "/v1/admin/plans", Some(&ctx.admin), Some(plan)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let plan_id = created.data()["id"].clone();
    let token = ctx.user().await;
    assert_eq!(ctx.call(Method::GET, "/v1/entitlements/me", Some(&token), None).await.code(), "no_active_subscription");
    let trial =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": plan_id}))).await;
    assert_eq!(trial.status, 201, "{}", trial.body);
    for (feature, delta) in [("api_calls", 10), ("events", 5)] {
        let body = json!({"feature_name": feature, "delta": delta});
        assert_eq!(ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(body)).await.status, 200);
    }
    let res = ctx.call(Method::GET, "/v1/entitlements/me", Some(&token), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.data()["plan_id"], plan_id);
    assert_eq!(
        res.data()["features"],
        json!({
            "api_calls": {"enabled": true, "limit": 1000, "used": 10, "remaining": 990},
            "audit_log": {"enabled": false, "limit": null, "used": null, "remaining": null},
            "events": {"enabled": true, "limit": null, "used": 5, "remaining": null, "billing": "per_unit"},
            "sso": {"enabled": true, "limit": null, "used": null, "remaining": null},
            "storage": {"enabled": true, "limit": null, "used": null, "remaining": null, "value": {"limit": "1GB"}},
        })
    );
}
