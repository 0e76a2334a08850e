//! Seats priced above those included, pause and resume, and usage of any period, on the test clock.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::clocked::{Clocked, GOOD_CARD};
use crate::usage_billing::{at, line, lines, metered_customer, metered_plan, use_feature};

/// A monthly USD plan: 49.00 for the first 3 seats, 10.00 for each seat above.
async fn team_plan(w: &Clocked) -> i64 {
    w.plan(json!({
        "code": format!("team-{}", uuid::Uuid::new_v4().simple()), "name": "Team", "price": "49.00",
        "currency": "USD", "billing_cycle": "monthly", "per_seat": {"unit_amount": "10.00", "included_seats": 3},
    }))
    .await
}

/// `at` as a query parameter: RFC 3339 in UTC (`Z`, nothing to escape), to the microsecond.
fn query_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// True when `a` and `b` are within a minute of each other (the server reads the clock a moment after the test).
fn close(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).abs() < Duration::minutes(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_above_the_included_ones_are_billed_prorated_when_added_and_renewed_at_their_count() {
    let w = Clocked::new().await;
    let plan = team_plan(&w).await;
    let (status, shown) = w.call(&w.sub, Method::GET, &format!("/v1/plans/{plan}"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["data"]["per_seat"], json!({"unit_amount": "10.00", "included_seats": 3}), "{shown}");
    // The seat price is in the plan's currency: a new currency without it conflicts with the plan.
    let body = json!({"currency": "EUR", "price": "45.00"});
    let (status, refused) = w.sub_call(Method::PUT, &format!("/v1/admin/plans/{plan}"), &w.admin, Some(body)).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("invalid_state")), "{refused}");

    let c = w.customer().await;
    let id = w.subscribe(&c, plan, 5, GOOD_CARD).await;
    let first = w.paid_invoice(&c, "initial").await;
    // The base fee once, and 2 seats above the 3 included.
    assert_eq!(
        lines(&first),
        [line("subscription", None, None, 1, "49.00", "49.00"), line("seats", None, None, 2, "10.00", "20.00")],
        "{first}"
    );
    assert_eq!(first["total"], "69.00");

    // Half-way through the month, 2 more seats: 69.00 → 89.00 for the rest of the period.
    let sub = w.subscription(&c, &id).await;
    let (start, end) = (at(&sub["current_period_start"]), at(&sub["current_period_end"]));
    w.advance_to(start + (end - start) / 2).await;
    let (status, changed) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"quantity": 7}))).await;
    assert_eq!(status, 200, "{changed}");
    let proration = w.paid_invoice(&c, "proration").await;
    assert_eq!(proration["total"], "10.00", "half of the two seats' 20.00: {proration}");

    // Back to 2 seats (within the included ones) at the period end: nothing refunded now, and the renewal bills
    // the base fee with no seat above those included.
    let (status, scheduled) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"quantity": 2}))).await;
    assert_eq!((status, scheduled["data"]["scheduled"].as_bool()), (200, Some(true)), "{scheduled}");
    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let renewal = w.paid_invoice(&c, "renewal").await;
    assert_eq!(
        lines(&renewal),
        [line("subscription", None, None, 1, "49.00", "49.00"), line("seats", None, None, 0, "10.00", "0.00")],
        "{renewal}"
    );
    assert_eq!(w.subscription(&c, &id).await["quantity"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_subscription_is_not_invoiced_until_resumed_and_its_usage_is_billed_and_refused() {
    let w = Clocked::new().await;
    let (plan, c, id, end) = metered_customer(&w).await;
    use_feature(&w, &c, "api_calls", 350).await;

    let pause = format!("/v1/subscriptions/{id}/pause");
    let (status, bad) = w.sub_call(Method::POST, &pause, &c.token, Some(json!({"at": "tomorrow"}))).await;
    assert_eq!((status, bad["code"].as_str()), (422, Some("validation_failed")), "{bad}");
    // No body: at the period end.
    let (status, pausing) = w.sub_call(Method::POST, &pause, &c.token, None).await;
    assert_eq!(status, 200, "{pausing}");
    assert_eq!((pausing["data"]["status"].as_str(), at(&pausing["data"]["pause_at"])), (Some("active"), end));
    use_feature(&w, &c, "api_calls", 50).await;

    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let sub = w.wait_status(&c, &id, "paused").await;
    assert_eq!(at(&sub["paused_at"]), end, "{sub}");
    // The period's usage is billed on its own: 400 calls, 300 above the 100 included.
    let usage = w.paid_invoice(&c, "final").await;
    assert_eq!(lines(&usage), [line("usage", Some("api_calls"), Some(1), 300, "0.01", "3.00")], "{usage}");
    let body = json!({"feature_name": "api_calls"});
    let (status, refused) = w.sub_call(Method::POST, "/v1/usage/use", &c.token, Some(body)).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("subscription_paused")), "{refused}");
    let (status, none) = w.sub_call(Method::GET, "/v1/invoices/upcoming", &c.token, None).await;
    assert_eq!(status, 404, "nothing is upcoming while paused: {none}");

    // Two periods pass: nothing invoiced, nothing charged.
    let invoices_paused = w.invoices(&c).await.len();
    for months in [1, 2] {
        w.advance_to(end + Duration::days(31 * months)).await;
        w.cycle().await;
    }
    assert_eq!(w.invoices(&c).await.len(), invoices_paused, "no invoice while paused");
    assert_eq!(w.subscription(&c, &id).await["status"], "paused");
    let (status, taken) = w.sub_call(Method::POST, "/v1/subscriptions", &c.token, Some(json!({"plan_id": plan}))).await;
    assert_eq!((status, taken["code"].as_str()), (409, Some("already_subscribed")), "{taken}");

    let resumed_at = w.now();
    let (status, resumed) = w.sub_call(Method::POST, &format!("/v1/subscriptions/{id}/resume"), &c.token, None).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["data"]["status"], "active");
    let new_start = at(&resumed["data"]["current_period_start"]);
    assert!(close(new_start, resumed_at), "a new period starts at the resume: {resumed}");
    let renewal = w.paid_invoice(&c, "renewal").await;
    assert_eq!(lines(&renewal), [line("subscription", None, None, 1, "10.00", "10.00")], "{renewal}");
    assert_eq!(at(&renewal["period_start"]), new_start);
    use_feature(&w, &c, "api_calls", 1).await;
    let (status, again) = w.sub_call(Method::POST, &format!("/v1/subscriptions/{id}/resume"), &c.token, None).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("invalid_state")), "{again}");

    let events = w.events(&c, &id).await;
    let order: Vec<&str> =
        events.iter().map(String::as_str).filter(|e| ["pause_scheduled", "paused", "resumed"].contains(e)).collect();
    assert_eq!(order, ["pause_scheduled", "paused", "resumed"], "{events:?}");
    assert!(w.failed_jobs().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_now_bills_the_usage_so_far_and_a_scheduled_pause_can_be_undone() {
    let w = Clocked::new().await;
    let plan = metered_plan(&w).await;
    let c = w.customer().await;
    let id = w.subscribe(&c, plan, 1, GOOD_CARD).await;
    let pause = format!("/v1/subscriptions/{id}/pause");
    let resume = format!("/v1/subscriptions/{id}/resume");
    let (status, _) = w.sub_call(Method::POST, &pause, &c.token, Some(json!({"at": "period_end"}))).await;
    assert_eq!(status, 200);
    let (status, undone) = w.sub_call(Method::POST, &resume, &c.token, None).await;
    assert_eq!((status, undone["data"]["pause_at"].clone()), (200, Value::Null), "{undone}");

    use_feature(&w, &c, "api_calls", 300).await;
    w.advance(Duration::days(3)).await;
    let (status, paused) = w.sub_call(Method::POST, &pause, &c.token, Some(json!({"at": "now"}))).await;
    assert_eq!((status, paused["data"]["status"].as_str()), (200, Some("paused")), "{paused}");
    let usage = w.paid_invoice(&c, "final").await;
    assert_eq!(lines(&usage), [line("usage", Some("api_calls"), Some(1), 200, "0.01", "2.00")], "{usage}");
    assert_eq!(at(&usage["lines"][0]["period_end"]), at(&paused["data"]["paused_at"]), "billed up to the pause");
    let (status, twice) = w.sub_call(Method::POST, &pause, &c.token, Some(json!({"at": "now"}))).await;
    assert_eq!((status, twice["code"].as_str()), (409, Some("invalid_state")), "{twice}");
    // Canceling a paused subscription ends it now.
    let (status, canceled) = w.sub_call(Method::DELETE, &format!("/v1/subscriptions/{id}"), &c.token, None).await;
    assert_eq!((status, canceled["data"]["status"].as_str()), (200, Some("canceled")), "{canceled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_a_past_period_is_read_by_its_start_and_usage_after_the_end_counts_in_the_next_period() {
    let w = Clocked::new().await;
    let plan = metered_plan(&w).await;
    let c = w.customer().await;
    let id = w.subscribe(&c, plan, 1, GOOD_CARD).await;
    let sub = w.subscription(&c, &id).await;
    let (first_start, end) = (at(&sub["current_period_start"]), at(&sub["current_period_end"]));
    use_feature(&w, &c, "api_calls", 700).await;
    // After the period end and before the renewal has run: the next period's.
    w.advance_to(end + Duration::minutes(1)).await;
    use_feature(&w, &c, "api_calls", 40).await;
    let (status, now) = w.sub_call(Method::GET, "/v1/usage/me", &c.token, None).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!((at(&now["data"]["period_start"]), now["data"]["features"][0]["used"].as_i64()), (end, Some(40)));

    w.cycle().await;
    let renewal = w.paid_invoice(&c, "renewal").await;
    assert_eq!(
        lines(&renewal)[1..],
        [line("usage", Some("api_calls"), Some(1), 600, "0.01", "6.00")],
        "only the ended period's 700 calls: {renewal}"
    );
    let past = format!("/v1/usage/me?period_start={}", query_time(first_start));
    let (status, usage) = w.sub_call(Method::GET, &past, &c.token, None).await;
    assert_eq!(status, 200, "{usage}");
    let features: Vec<(Value, Value)> = usage["data"]["features"]
        .as_array()
        .map(|f| f.iter().map(|f| (f["feature_name"].clone(), f["used"].clone())).collect())
        .unwrap_or_default();
    assert_eq!(features, [(json!("api_calls"), json!(700)), (json!("exports"), json!(0))], "{usage}");
    assert_eq!(at(&usage["data"]["reset_at"]), end);
    let current = format!("/v1/usage/me?period_start={}", query_time(end));
    let (status, usage) = w.sub_call(Method::GET, &current, &c.token, None).await;
    assert_eq!((status, usage["data"]["features"][0]["used"].as_i64()), (200, Some(40)), "{usage}");

    let (status, bad) = w.sub_call(Method::GET, "/v1/usage/me?period_start=last-month", &c.token, None).await;
    assert_eq!((status, bad["code"].as_str()), (422, Some("validation_failed")), "{bad}");
    let never = query_time(first_start - Duration::days(40));
    let (status, none) = w.sub_call(Method::GET, &format!("/v1/usage/me?period_start={never}"), &c.token, None).await;
    assert_eq!((status, none["code"].as_str()), (404, Some("period_not_found")), "{none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_a_longer_cycle_bills_the_usage_of_the_period_it_ends() {
    let w = Clocked::new().await;
    let monthly = metered_plan(&w).await;
    let yearly = w
        .plan(json!({
            "code": format!("metered-yearly-{}", uuid::Uuid::new_v4().simple()), "name": "Metered yearly",
            "price": "100.00", "currency": "USD", "billing_cycle": "yearly",
            "features": {"api_calls": {"billing": "per_unit", "unit_amount": "0.002"}},
        }))
        .await;
    let c = w.customer().await;
    let id = w.subscribe(&c, monthly, 1, GOOD_CARD).await;
    let start: DateTime<Utc> = at(&w.subscription(&c, &id).await["current_period_start"]);
    use_feature(&w, &c, "api_calls", 600).await;
    w.advance(Duration::days(10)).await;
    let (status, changed) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"plan_id": yearly}))).await;
    assert_eq!(status, 200, "{changed}");
    let upgrade = w.paid_invoice(&c, "proration").await;
    let usage: Vec<_> = lines(&upgrade).into_iter().filter(|l| l.0 == "usage").collect();
    // 500 calls above the 100 included, at the monthly plan's price, for the 10 days the period lasted.
    assert_eq!(usage, [line("usage", Some("api_calls"), Some(1), 500, "0.01", "5.00")], "{upgrade}");
    let usage_line = upgrade["lines"].as_array().and_then(|l| l.iter().find(|l| l["kind"] == "usage")).cloned();
    let usage_line = usage_line.unwrap_or_default();
    assert_eq!(at(&usage_line["period_start"]), start);
    assert!(close(at(&usage_line["period_end"]), start + Duration::days(10)), "billed up to the change: {upgrade}");
    // Usage from now counts in the new period, billed by the yearly plan at its end.
    use_feature(&w, &c, "api_calls", 5).await;
    let (status, upcoming) = w.sub_call(Method::GET, "/v1/invoices/upcoming", &c.token, None).await;
    assert_eq!(status, 200, "{upcoming}");
    assert_eq!(lines(&upcoming["data"])[1..], [line("usage", Some("api_calls"), None, 5, "0.002", "0.01")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_is_a_pdf_a_reader_opens_for_its_owner_and_an_administrator_only() {
    let w = Clocked::new().await;
    let plan = team_plan(&w).await;
    let c = w.customer().await;
    w.subscribe(&c, plan, 5, GOOD_CARD).await;
    let invoice = w.paid_invoice(&c, "initial").await;
    let path = format!("/v1/invoices/{}/pdf", invoice["id"].as_str().unwrap_or_default());
    let get = |token: String| {
        let url = w.sub.api().url(&path);
        async move {
            let res = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("{e}"));
            let (status, kind) = (res.status().as_u16(), res.headers().get("content-type").cloned());
            (status, kind, res.bytes().await.unwrap_or_default())
        }
    };
    let (status, kind, pdf) = get(c.token.clone()).await;
    assert_eq!((status, kind.as_ref().and_then(|k| k.to_str().ok())), (200, Some("application/pdf")));
    // An independent reader opens it and finds the invoice's number, lines and total.
    let document = lopdf::Document::load_mem(&pdf).unwrap_or_else(|e| panic!("not a PDF a reader opens: {e}"));
    let text = document.extract_text(&[1]).unwrap_or_else(|e| panic!("{e}"));
    let number = invoice["number"].as_str().unwrap_or_default();
    for expected in [number, "Bill to:", "Team (monthly) × 1", "Seats: 5, 3 included", "69.00 USD", "Amount due"] {
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    let (status, _, _) = get(w.admin.clone()).await;
    assert_eq!(status, 200, "an administrator reads anyone's invoice");
    let other = w.customer().await;
    let (status, _, body) = get(other.token.clone()).await;
    assert_eq!(status, 404, "someone else's invoice does not exist for them: {}", String::from_utf8_lossy(&body));
}
