//! `/v1/subscriptions` and `/v1/invoices`: creation, reads, plan changes with proration, cancellation,
//! reactivation, ownership, and the concurrency guarantees.

use crate::common;

use common::Ctx;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_trial_starts_at_once_and_only_once() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let res =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": "1"}))).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let d = res.data();
    assert_eq!((d["status"].as_str(), d["plan_id"].as_i64()), (Some("trial"), Some(1)));
    assert_eq!(d["plan"]["name"], "Basic Trial");
    assert_eq!(d["plan"]["features"]["api_calls"]["limit"], 1000);
    let start = chrono::DateTime::parse_from_rfc3339(d["start_date"].as_str().unwrap_or_default()).ok();
    let end = chrono::DateTime::parse_from_rfc3339(d["end_date"].as_str().unwrap_or_default()).ok();
    assert_eq!(start.zip(end).map(|(s, e)| (e - s).num_days()), Some(30));

    let again =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": 1}))).await;
    assert_eq!((again.status, again.code()), (409, "trial_already_used"));
    let canceled = ctx
        .call(
            Method::DELETE,
            &format!("/v1/subscriptions/{}", d["id"].as_str().unwrap_or_default()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.data()["status"], "canceled", "a trial is canceled at once");
    let after_cancel =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": 1}))).await;
    assert_eq!(after_cancel.code(), "trial_already_used", "one trial per user, ever");

    let other = ctx.user().await;
    let not_trial =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&other), Some(json!({"trial_plan_id": 2}))).await;
    assert_eq!((not_trial.status, not_trial.code()), (404, "plan_not_found"), "not a trial plan: none to this route");
    let bad =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&other), Some(json!({"trial_plan_id": "one"}))).await;
    assert_eq!(bad.status, 422);
    assert_eq!(
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&other), Some(json!({"trial_plan_id": 404})))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_paid_subscription_is_pending_with_a_finalized_invoice() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let trial =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": 1}))).await;
    assert_eq!(trial.status, 201);

    // A paid subscription may be created during the trial (it replaces the trial once paid).
    let res = ctx.call(Method::POST, "/v1/subscriptions/", Some(&token), Some(json!({"plan_id": 2}))).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let d = res.data().clone();
    assert_eq!((d["status"].as_str(), d["payment_required"].as_bool()), (Some("pending"), Some(true)));
    assert_eq!((d["amount"].as_str(), d["currency"].as_str()), (Some("29.99"), Some("USD")));
    assert_eq!(d["plan"]["name"], "Basic");
    let invoice_id = d["invoice_id"].as_str().unwrap_or_default();
    let invoice = ctx.call(Method::GET, &format!("/v1/invoices/{invoice_id}"), Some(&token), None).await;
    assert_eq!(invoice.status, 200);
    let inv = invoice.data();
    assert_eq!(
        (inv["status"].as_str(), inv["total"].as_str(), inv["amount_due"].as_str()),
        (Some("open"), Some("29.99"), Some("29.99"))
    );
    let number = inv["number"].as_str().unwrap_or_default();
    let month = chrono::Utc::now().format("%Y%m").to_string();
    assert_eq!(number, format!("INV-{month}-0001"), "the first invoice of the month");
    assert_eq!(inv["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(inv["lines"][0]["amount"], "29.99");

    let again = ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 3}))).await;
    assert_eq!((again.status, again.code()), (409, "already_subscribed"));
    let mine = ctx.call(Method::GET, "/v1/subscriptions/me", Some(&token), None).await;
    let statuses: Vec<&str> =
        mine.data().as_array().into_iter().flatten().filter_map(|s| s["status"].as_str()).collect();
    assert_eq!(statuses, ["pending", "trial"], "newest first");
    let invoices = ctx.call(Method::GET, "/v1/invoices/me", Some(&token), None).await;
    assert_eq!(invoices.data().as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn paid_subscription_input_is_validated() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let cases = [
        (json!({"plan_id": 1}), 404, "plan_not_found"), // a trial plan is not sold here
        (json!({"plan_id": 999}), 404, "plan_not_found"),
        (json!({"plan_id": 2, "quantity": 0}), 422, "validation_failed"),
        (json!({"plan_id": "two"}), 422, "validation_failed"),
        (json!({"plan_id": 2, "status": "active"}), 422, "validation_failed"),
        (json!({}), 422, "validation_failed"),
    ];
    for (body, status, code) in cases {
        let res = ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(body.clone())).await;
        assert_eq!((res.status, res.code()), (status, code), "{body}");
    }
    assert_eq!(ctx.call(Method::POST, "/v1/subscriptions", None, Some(json!({"plan_id": 2}))).await.status, 401);
    let seats =
        ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 3, "quantity": 3}))).await;
    assert_eq!(seats.data()["amount"], "297.00", "99.00 × 3 seats");
}

#[tokio::test]
async fn another_users_objects_are_404_on_every_route() {
    let ctx = Ctx::new().await;
    let (owner, id) = ctx.active_subscriber(2, 1).await;
    let invoices = ctx.call(Method::GET, "/v1/invoices/me", Some(&owner), None).await;
    let invoice_id = invoices.data()[0]["id"].as_str().unwrap_or_default().to_owned();
    let stranger = ctx.user().await;
    let routes = [
        (Method::GET, format!("/v1/subscriptions/{id}"), None),
        (Method::PUT, format!("/v1/subscriptions/{id}"), Some(json!({"plan_id": 3}))),
        (Method::DELETE, format!("/v1/subscriptions/{id}"), None),
        (Method::POST, format!("/v1/subscriptions/{id}/reactivate"), None),
        (Method::GET, format!("/v1/subscriptions/{id}/events"), None),
        (Method::GET, format!("/v1/invoices/{invoice_id}"), None),
    ];
    for (method, path, body) in routes {
        let res = ctx.call(method.clone(), &path, Some(&stranger), body.clone()).await;
        assert_eq!(res.status, 404, "{method} {path}: {}", res.body);
        // An admin may read them.
        if method == Method::GET {
            assert_eq!(ctx.call(method, &path, Some(&ctx.admin), None).await.status, 200, "{path}");
        }
    }
    assert_eq!(ctx.call(Method::GET, &format!("/v1/subscriptions/{id}"), Some(&owner), None).await.status, 200);
    let unknown = uuid::Uuid::new_v4();
    let res = ctx.call(Method::GET, &format!("/v1/subscriptions/{unknown}"), Some(&owner), None).await;
    assert_eq!((res.status, res.code()), (404, "subscription_not_found"));
}

#[tokio::test]
async fn an_upgrade_applies_now_with_a_proration_invoice() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let res = ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2}))).await;
    let id = res.data()["id"].as_str().unwrap_or_default().to_owned();
    // A 30-day period with exactly 15 days left: 29.99 → 99.00 credits 15.00 (14.995 rounded half up) and charges 49.50.
    let now = chrono::Utc::now();
    let (start, end) = (now - chrono::Duration::days(15), now + chrono::Duration::days(15));
    ctx.activate(&token, &id, &start.to_rfc3339(), &end.to_rfc3339()).await;
    let up = ctx.call(Method::PUT, &format!("/v1/subscriptions/{id}"), Some(&token), Some(json!({"plan_id": 3}))).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let d = up.data();
    assert_eq!(d["scheduled"], false);
    assert_eq!(d["subscription"]["plan_id"], 3);
    let p = &d["proration"];
    // Seconds pass between activation and the change, so allow the last cent to move.
    let cents = |v: &serde_json::Value| {
        v.as_str().unwrap_or("0").parse::<rust_decimal::Decimal>().unwrap_or_default()
            * rust_decimal::Decimal::ONE_HUNDRED
    };
    assert!((cents(&p["credit"]) - rust_decimal::Decimal::from(1500)).abs() <= rust_decimal::Decimal::ONE, "{p}");
    assert!((cents(&p["charge"]) - rust_decimal::Decimal::from(4950)).abs() <= rust_decimal::Decimal::ONE, "{p}");
    assert_eq!(cents(&p["net"]), cents(&p["charge"]) - cents(&p["credit"]));
    let invoice = ctx
        .call(
            Method::GET,
            &format!("/v1/invoices/{}", d["invoice_id"].as_str().unwrap_or_default()),
            Some(&token),
            None,
        )
        .await;
    let inv = invoice.data();
    assert_eq!(inv["kind"], "proration");
    assert_eq!(inv["total"], p["net"]);
    let lines = inv["lines"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 2);
    assert_eq!(cents(&lines[0]["amount"]) + cents(&lines[1]["amount"]), cents(&inv["total"]), "total == Σ lines");
    let events = ctx.call(Method::GET, &format!("/v1/subscriptions/{id}/events"), Some(&token), None).await;
    let types: Vec<&str> =
        events.data().as_array().into_iter().flatten().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(types, ["created", "plan_changed"]);
}

#[tokio::test]
async fn a_downgrade_waits_for_the_period_end() {
    let ctx = Ctx::new().await;
    let (token, id) = ctx.active_subscriber(3, 2).await;
    let down =
        ctx.call(Method::PUT, &format!("/v1/subscriptions/{id}"), Some(&token), Some(json!({"plan_id": 2}))).await;
    assert_eq!(down.status, 200, "{}", down.body);
    let d = down.data();
    assert_eq!((d["scheduled"].as_bool(), d["proration"].is_null()), (Some(true), true));
    assert_eq!(d["subscription"]["plan_id"], 3, "still Pro until the period ends");
    assert_eq!(
        (d["subscription"]["pending_plan_id"].as_i64(), d["subscription"]["pending_quantity"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(d["effective_at"], d["subscription"]["current_period_end"]);
    // Back to the current plan and seats: the scheduled downgrade is undone.
    let undo = ctx
        .call(Method::PUT, &format!("/v1/subscriptions/{id}"), Some(&token), Some(json!({"plan_id": 3, "quantity": 2})))
        .await;
    assert_eq!(undo.status, 200, "{}", undo.body);
    let s = &undo.data()["subscription"];
    assert_eq!(
        (s["plan_id"].as_i64(), s["pending_plan_id"].is_null(), s["pending_quantity"].is_null()),
        (Some(3), true, true)
    );
    let events = ctx.call(Method::GET, &format!("/v1/subscriptions/{id}/events"), Some(&token), None).await;
    assert!(events.data().as_array().into_iter().flatten().any(|e| e["event_type"] == "plan_change_unscheduled"));
    // Nothing is scheduled any more: the same plan again is a change to nothing.
    let same = ctx
        .call(Method::PUT, &format!("/v1/subscriptions/{id}"), Some(&token), Some(json!({"plan_id": 3, "quantity": 2})))
        .await;
    assert_eq!(same.status, 422);
    let empty = ctx.call(Method::PUT, &format!("/v1/subscriptions/{id}"), Some(&token), Some(json!({}))).await;
    assert_eq!(empty.status, 422);
}

#[tokio::test]
async fn seats_change_prorates_and_a_pending_subscription_cannot_change() {
    let ctx = Ctx::new().await;
    let (token, id) = ctx.active_subscriber(2, 1).await;
    let up =
        ctx.call(Method::PUT, &format!("/v1/subscriptions/{id}"), Some(&token), Some(json!({"quantity": 3}))).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.data()["subscription"]["quantity"], 3);
    assert!(up.data()["proration"]["net"].as_str().is_some_and(|n| n != "0.00"));

    let other = ctx.user().await;
    let pending = ctx.call(Method::POST, "/v1/subscriptions", Some(&other), Some(json!({"plan_id": 2}))).await;
    let pid = pending.data()["id"].as_str().unwrap_or_default();
    let res =
        ctx.call(Method::PUT, &format!("/v1/subscriptions/{pid}"), Some(&other), Some(json!({"plan_id": 3}))).await;
    assert_eq!((res.status, res.code()), (409, "invalid_state"));
}

#[tokio::test]
async fn two_concurrent_plan_changes_one_wins_the_other_gets_409() {
    let ctx = Ctx::new().await;
    for _ in 0..5 {
        let (token, id) = ctx.active_subscriber(2, 1).await;
        let path = format!("/v1/subscriptions/{id}");
        let version = ctx.call(Method::GET, &path, Some(&token), None).await.data()["version"].to_string();
        // Both changes are based on the version just read: whatever the timing, only one may apply.
        let app = &ctx.app;
        let change = |plan: i32| {
            let (path, version, token) = (path.clone(), version.clone(), token.clone());
            async move {
                let res = app
                    .client
                    .put(app.url(&path))
                    .bearer_auth(&token)
                    .header("If-Match", version)
                    .json(&json!({"plan_id": plan}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let status = res.status().as_u16();
                (status, res.json::<serde_json::Value>().await.unwrap_or_default())
            }
        };
        let answers = join_all([change(3), change(4)]).await;
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{answers:?}");
        let loser = answers.iter().find(|a| a.0 == 409).map(|a| a.1["code"].clone());
        assert_eq!(loser, Some(json!("concurrent_update")));
        let events = ctx.call(Method::GET, &format!("{path}/events"), Some(&token), None).await;
        let changed =
            events.data().as_array().into_iter().flatten().filter(|e| e["event_type"] == "plan_changed").count();
        assert_eq!(changed, 1, "exactly one change applied");
        let stale = ctx.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(stale.data()["version"].to_string(), (version.parse::<i64>().unwrap_or(0) + 1).to_string());
    }
}

#[tokio::test]
async fn cancel_at_period_end_then_reactivate() {
    let ctx = Ctx::new().await;
    let (token, id) = ctx.active_subscriber(2, 1).await;
    let path = format!("/v1/subscriptions/{id}");
    let scheduled = ctx.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(scheduled.status, 200, "{}", scheduled.body);
    assert_eq!(
        (scheduled.data()["status"].as_str(), scheduled.data()["cancel_at_period_end"].as_bool()),
        (Some("active"), Some(true))
    );
    let back = ctx.call(Method::POST, &format!("{path}/reactivate"), Some(&token), None).await;
    assert_eq!((back.status, back.data()["cancel_at_period_end"].as_bool()), (200, Some(false)));
    let nothing = ctx.call(Method::POST, &format!("{path}/reactivate"), Some(&token), None).await;
    assert_eq!((nothing.status, nothing.code()), (409, "invalid_state"));

    let now = ctx.call(Method::DELETE, &format!("{path}?immediately=true"), Some(&token), None).await;
    assert_eq!(now.data()["status"], "canceled");
    assert!(now.data()["ended_at"].is_string());
    let twice = ctx.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!((twice.status, twice.code()), (409, "invalid_state"));
    let events = ctx.call(Method::GET, &format!("{path}/events"), Some(&token), None).await;
    let types: Vec<&str> =
        events.data().as_array().into_iter().flatten().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(types, ["created", "cancel_scheduled", "reactivated", "canceled"]);
}

#[tokio::test]
async fn canceling_a_pending_subscription_voids_its_invoice() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let res = ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2}))).await;
    let (id, invoice) = (
        res.data()["id"].as_str().unwrap_or_default().to_owned(),
        res.data()["invoice_id"].as_str().unwrap_or_default().to_owned(),
    );
    let canceled = ctx.call(Method::DELETE, &format!("/v1/subscriptions/{id}"), Some(&token), None).await;
    assert_eq!(canceled.data()["status"], "canceled");
    let inv = ctx.call(Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None).await;
    assert_eq!((inv.data()["status"].as_str(), inv.data()["amount_due"].as_str()), (Some("void"), Some("0.00")));
    // The user may subscribe again.
    assert_eq!(
        ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2}))).await.status,
        201
    );
}

#[tokio::test]
async fn one_current_paid_subscription_is_enforced_by_the_database() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let answers = join_all(
        (0..10).map(|_| ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2})))),
    )
    .await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers.iter().filter(|a| a.status == 409 && a.code() == "already_subscribed").count();
    assert_eq!((created, refused), (1, 9), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
}

/// A user and a past-due subscription of theirs written behind the service's back (so none of it counts as this
/// process's own recent write): their token and the subscription's id.
async fn subscribed_behind_the_back(ctx: &Ctx) -> (String, uuid::Uuid) {
    let token = ctx.user().await;
    let me = ctx.call(Method::GET, "/v1/auth/me", Some(&token), None).await;
    let user = me.data()["id"].as_str().unwrap_or_default().to_owned();
    let id = uuid::Uuid::new_v4();
    ctx.sql(&format!(
        "INSERT INTO subscriptions (id, user_id, plan_id, status, billing_anchor, current_period_start, \
         current_period_end) VALUES ('{id}', '{user}', 2, 'past_due', now() - interval '10 days', \
         now() - interval '10 days', now() + interval '20 days')"
    ))
    .await;
    (token, id)
}

/// Reads of a user's subscriptions are served from a per-process cache; a change committed by another
/// connection (another process, a script) reaches the next reads through the database's notification, long
/// before an entry would expire (30 s).
#[tokio::test]
async fn a_change_committed_elsewhere_reaches_the_cached_reads() {
    let ctx = Ctx::new().await;
    let (token, id) = subscribed_behind_the_back(&ctx).await;
    let status = |answer: &common::Answer| answer.data()[0]["status"].as_str().unwrap_or_default().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The reads that fill the cache (the first starts its listener).
    for _ in 0..20 {
        let mine = ctx.call(Method::GET, "/v1/subscriptions/me", Some(&token), None).await;
        assert_eq!(status(&mine), "past_due", "{}", mine.body);
    }
    let limits = ctx.call(Method::GET, "/v1/usage/limits", Some(&token), None).await;
    assert_eq!(limits.status, 200, "past due still gives access: {}", limits.body);

    ctx.sql(&format!("UPDATE subscriptions SET status = 'canceled', ended_at = now() WHERE id = '{id}'")).await;
    loop {
        let mine = ctx.call(Method::GET, "/v1/subscriptions/me", Some(&token), None).await;
        if status(&mine) == "canceled" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the change was not seen: {}", mine.body);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let limits = ctx.call(Method::GET, "/v1/usage/limits", Some(&token), None).await;
    assert_eq!((limits.status, limits.code()), (403, "no_active_subscription"), "{}", limits.body);
}

/// Once its listener is listening, the cache answers: with the database's announcements switched off for this
/// test's table, a change made behind the service's back is not seen (it is, above, with them on).
#[tokio::test]
async fn the_cache_answers_once_its_listener_is_listening() {
    let ctx = Ctx::new().await;
    let (token, id) = subscribed_behind_the_back(&ctx).await;
    ctx.sql("ALTER TABLE subscriptions DISABLE TRIGGER subscriptions_changed").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for flip in ["active", "past_due"].into_iter().cycle() {
        // The database now says `flip`; a read still answering the other status came from the cache.
        ctx.sql(&format!("UPDATE subscriptions SET status = '{flip}' WHERE id = '{id}'")).await;
        let mine = ctx.call(Method::GET, "/v1/subscriptions/me", Some(&token), None).await;
        if mine.data()[0]["status"] != flip {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "every read went to the database: {}", mine.body);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
