//! Metered usage billed in arrears, on the test clock: the usage of a period is on the renewal invoice with one
//! line per tier reached, and a subscription that ends at its period end gets a final invoice for its last usage.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::clocked::{Clocked, Customer, GOOD_CARD};

pub fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// A monthly USD plan at 10.00 whose `api_calls` are billed by graduated tiers above 100 free calls: 0.01 each up
/// to 1,000, 0.005 beyond; `exports` are hard-limited.
pub async fn metered_plan(w: &Clocked) -> i64 {
    w.plan(json!({
        "code": format!("metered-{}", uuid::Uuid::new_v4().simple()), "name": "Metered", "price": "10.00",
        "currency": "USD", "billing_cycle": "monthly",
        "features": {
            "api_calls": {"billing": "graduated", "included": 100, "tiers": [
                {"up_to": 1000, "unit_amount": "0.01"}, {"up_to": null, "unit_amount": "0.005"}]},
            "exports": {"limit": 5},
        },
    }))
    .await
}

/// A customer subscribed (and paid up) to a new metered plan: the plan, the customer, the subscription and the end
/// of its first period.
pub async fn metered_customer(w: &Clocked) -> (i64, Customer, String, DateTime<Utc>) {
    let plan = metered_plan(w).await;
    let c = w.customer().await;
    let id = w.subscribe(&c, plan, 1, GOOD_CARD).await;
    let end = at(&w.subscription(&c, &id).await["current_period_end"]);
    (plan, c, id, end)
}

pub async fn use_feature(w: &Clocked, c: &Customer, feature: &str, delta: i64) {
    let body = json!({"feature_name": feature, "delta": delta});
    let (status, used) = w.sub_call(Method::POST, "/v1/usage/use", &c.token, Some(body)).await;
    assert_eq!(status, 200, "{used}");
}

/// A line as (kind, feature, tier, quantity, unit_amount, amount).
pub type LineView = (String, Option<String>, Option<i64>, i64, String, String);

/// Each line of `invoice`.
pub fn lines(invoice: &Value) -> Vec<LineView> {
    invoice["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    (
                        l["kind"].as_str().unwrap_or_default().to_owned(),
                        l["feature"].as_str().map(str::to_owned),
                        l["tier"].as_i64(),
                        l["quantity"].as_i64().unwrap_or_default(),
                        l["unit_amount"].as_str().unwrap_or_default().to_owned(),
                        l["amount"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn line(kind: &str, feature: Option<&str>, tier: Option<i64>, quantity: i64, unit: &str, amount: &str) -> LineView {
    (kind.to_owned(), feature.map(str::to_owned), tier, quantity, unit.to_owned(), amount.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_metered_usage_is_billed_by_tier_on_the_renewal_invoice_and_charged() {
    let w = Clocked::new().await;
    let (_, c, id, end) = metered_customer(&w).await;
    // 1,600 calls in the month (no cap: billed, not limited); 3 exports (limited, never billed).
    for delta in [600, 900, 100] {
        use_feature(&w, &c, "api_calls", delta).await;
    }
    use_feature(&w, &c, "exports", 3).await;

    w.advance(end - w.now() + Duration::minutes(1)).await;
    assert_eq!(w.cycle().await.renewals, 1);
    let renewal = w.paid_invoice(&c, "renewal").await;
    // 1,500 billable calls: 1,000 at 0.01 (tier 1), 500 at 0.005 (tier 2); the usage is of the period that ended.
    assert_eq!(
        lines(&renewal),
        [
            line("subscription", None, None, 1, "10.00", "10.00"),
            line("usage", Some("api_calls"), Some(1), 1000, "0.01", "10.00"),
            line("usage", Some("api_calls"), Some(2), 500, "0.005", "2.50"),
        ],
        "{renewal}"
    );
    assert_eq!(renewal["total"], "22.50", "the total is the sum of the lines");
    let usage_line = &renewal["lines"][1];
    assert_eq!(at(&usage_line["period_end"]), end, "usage is billed for the period that ended");
    let (status, history) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&c.token), None).await;
    assert_eq!(status, 200);
    assert!(
        history["data"]["items"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["amount"] == "22.50" && p["status"] == "success")),
        "the renewal was charged its total: {history}"
    );
    assert_eq!(w.subscription(&c, &id).await["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ending_at_its_period_end_is_billed_its_last_usage() {
    let w = Clocked::new().await;
    let (_, c, id, end) = metered_customer(&w).await;
    use_feature(&w, &c, "api_calls", 350).await;
    let (status, _) = w.sub_call(Method::DELETE, &format!("/v1/subscriptions/{id}"), &c.token, None).await;
    assert_eq!(status, 200);

    w.advance(end - w.now() + Duration::minutes(1)).await;
    w.cycle().await;
    w.wait_status(&c, &id, "canceled").await;
    let last = w.paid_invoice(&c, "final").await;
    assert_eq!(lines(&last), [line("usage", Some("api_calls"), Some(1), 250, "0.01", "2.50")], "{last}");
    assert_eq!(w.invoices(&c).await.iter().filter(|i| i["kind"] == "renewal").count(), 0, "no next period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upcoming_invoice_is_the_invoice_later_issued_for_the_same_usage() {
    let w = Clocked::new().await;
    let plan = metered_plan(&w).await;
    let nobody = w.customer().await;
    let (status, none) = w.sub_call(Method::GET, "/v1/invoices/upcoming", &nobody.token, None).await;
    assert_eq!((status, none["code"].as_str()), (404, Some("no_active_subscription")), "{none}");

    let c = w.customer().await;
    let id = w.subscribe(&c, plan, 1, GOOD_CARD).await;
    let end = at(&w.subscription(&c, &id).await["current_period_end"]);
    // 1,150 billable calls: 1,000 at 0.01 and 150 at 0.005, after the next month's 10.00.
    use_feature(&w, &c, "api_calls", 1_250).await;
    let (status, preview) = w.sub_call(Method::GET, "/v1/invoices/upcoming", &c.token, None).await;
    assert_eq!(status, 200, "{preview}");
    let preview = &preview["data"];
    assert_eq!((preview["kind"].as_str(), preview["total"].as_str()), (Some("renewal"), Some("20.75")), "{preview}");
    let invoices_before = w.invoices(&c).await.len();
    assert_eq!(invoices_before, 1, "a preview issues nothing");

    w.advance(end - w.now() + Duration::minutes(1)).await;
    w.cycle().await;
    let issued = billing_testkit::poll_until(std::time::Duration::from_secs(20), "the renewal", || async {
        w.invoices(&c).await.into_iter().find(|i| i["kind"] == "renewal")
    })
    .await;
    assert_eq!(lines(preview), lines(&issued), "preview {preview}\nissued {issued}");
    assert_eq!(
        (preview["total"].clone(), preview["period_start"].clone(), preview["period_end"].clone()),
        (issued["total"].clone(), issued["period_start"].clone(), issued["period_end"].clone())
    );
    let periods = |v: &Value| -> Vec<(Value, Value)> {
        v["lines"]
            .as_array()
            .map(|l| l.iter().map(|l| (l["period_start"].clone(), l["period_end"].clone())).collect())
            .unwrap_or_default()
    };
    assert_eq!(periods(preview), periods(&issued));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graduated_plan_upgraded_mid_period_bills_the_whole_period_by_the_plan_in_effect_at_its_end() {
    let w = Clocked::new().await;
    let basic = metered_plan(&w).await;
    // Same cycle, dearer base, cheaper calls: 500 included, then 0.004 up to 10,000.
    let pro = w
        .plan(json!({
            "code": format!("metered-pro-{}", uuid::Uuid::new_v4().simple()), "name": "Metered Pro", "price": "30.00",
            "currency": "USD", "billing_cycle": "monthly",
            "features": {"api_calls": {"billing": "graduated", "included": 500, "tiers": [
                {"up_to": 10000, "unit_amount": "0.004"}, {"up_to": null, "unit_amount": "0.002"}]}},
        }))
        .await;
    let c = w.customer().await;
    let id = w.subscribe(&c, basic, 1, GOOD_CARD).await;
    let end = at(&w.subscription(&c, &id).await["current_period_end"]);
    use_feature(&w, &c, "api_calls", 900).await;
    w.advance(Duration::days(12)).await;
    let (status, changed) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"plan_id": pro}))).await;
    assert_eq!((status, changed["data"]["scheduled"].as_bool()), (200, Some(false)), "an upgrade: {changed}");
    let proration = w.paid_invoice(&c, "proration").await;
    assert!(lines(&proration).iter().all(|l| l.0 != "usage"), "the period goes on: no usage billed yet {proration}");
    use_feature(&w, &c, "api_calls", 1_100).await;

    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let renewal = w.paid_invoice(&c, "renewal").await;
    // 2,000 calls in the period, all priced by Pro: 1,500 above its 500 included, at 0.004.
    assert_eq!(
        lines(&renewal),
        [
            line("subscription", None, None, 1, "30.00", "30.00"),
            line("usage", Some("api_calls"), Some(1), 1500, "0.004", "6.00"),
        ],
        "{renewal}"
    );
    assert_eq!(renewal["total"], "36.00");
}
