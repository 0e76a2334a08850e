//! Billing over time on the test clock, one test per path: renewals, dunning, trial ends, plan changes,
//! cancellations, pending expiry and usage periods. Both services and both workers run for real; only the gateway
//! is the mock, and the clock moves only when a test moves it.

use crate::clocked;

use billing_domain::{Currency, Money, Price, prorate};
use chrono::{DateTime, Duration, Utc};
use clocked::{Clocked, Customer, GOOD_CARD, HARD_DECLINE, SOFT_DECLINE};
use reqwest::Method;
use serde_json::{Value, json};

const BASIC: i64 = 2;
const PRO: i64 = 3;
const TRIAL: i64 = 1;

/// A new customer with an active subscription to `plan` paid by a good card: (customer, id, period end).
async fn subscribed(w: &Clocked, plan: i64) -> (Customer, String, DateTime<Utc>) {
    let c = w.customer().await;
    let id = w.subscribe(&c, plan, 1, GOOD_CARD).await;
    let end = at(&w.subscription(&c, &id).await["current_period_end"]);
    (c, id, end)
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// The customer's payments (newest first), as the payment service lists them.
async fn payments(w: &Clocked, c: &Customer) -> Vec<Value> {
    let (status, body) = w.call(&w.pay, Method::GET, "/v1/payments/history?limit=100", Some(&c.token), None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["items"].as_array().cloned().unwrap_or_default()
}

fn of_invoice<'a>(payments: &'a [Value], invoice: &Value) -> Vec<&'a Value> {
    payments.iter().filter(|p| p["invoice_id"] == invoice["id"]).collect()
}

fn invoice_of_kind(invoices: &[Value], kind: &str) -> Value {
    invoices.iter().find(|i| i["kind"] == kind).cloned().unwrap_or_else(|| panic!("no {kind} invoice in {invoices:?}"))
}

/// The subscription once it has moved into the period starting at `start`.
async fn renewed_from(w: &Clocked, c: &Customer, id: &str, start: DateTime<Utc>) -> Value {
    billing_testkit::poll_until(std::time::Duration::from_secs(20), "the renewal", || async {
        let sub = w.subscription(c, id).await;
        (at(&sub["current_period_start"]) == start).then_some(sub)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_charges_the_saved_card_and_advances_the_period_once() {
    let w = Clocked::new().await;
    let c = w.customer().await;
    let id = w.subscribe(&c, BASIC, 1, GOOD_CARD).await;
    let first = w.subscription(&c, &id).await;
    let end = at(&first["current_period_end"]);

    // A day before the end nothing happens.
    w.advance(end - w.now() - Duration::days(1)).await;
    assert_eq!(w.cycle().await.renewals, 0);

    w.advance(Duration::days(1) + Duration::minutes(1)).await;
    // The worker's own scheduler may take the renewal before the test's ticks do; either way there is one.
    let report = w.cycle().await;
    assert!(report.renewals <= 1, "one renewal however often the tick runs: {report:?}");
    let renewed = renewed_from(&w, &c, &id, end).await;
    assert_eq!(renewed["status"], "active");
    assert_eq!(at(&renewed["current_period_end"]), billing_domain::BillingCycle::Monthly.period_end(end, 0));

    let invoices = w.invoices(&c).await;
    let renewal = invoice_of_kind(&invoices, "renewal");
    assert_eq!((renewal["status"].as_str(), renewal["total"].as_str()), (Some("paid"), Some("29.99")), "{renewal}");
    assert_eq!(at(&renewal["period_start"]), end);
    let paid = payments(&w, &c).await;
    let charges = of_invoice(&paid, &renewal);
    assert_eq!(charges.len(), 1, "{paid:?}");
    assert_eq!((charges[0]["status"].as_str(), charges[0]["amount"].as_str()), (Some("success"), Some("29.99")));
    let events = w.events(&c, &id).await;
    assert_eq!(events, vec!["created", "activated", "renewal_invoiced", "renewed"], "{events:?}");

    // Ticks run again change nothing.
    assert_eq!(w.cycle().await, Default::default());
    assert_eq!(w.invoices(&c).await.len(), 2);
    assert!(w.failed_jobs().await.is_empty(), "{:?}", w.failed_jobs().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_goes_past_due_and_a_later_retry_recovers_it() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    w.save_card(&c, SOFT_DECLINE).await;

    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let past_due = w.wait_status(&c, &id, "past_due").await;
    assert_eq!(at(&past_due["current_period_end"]), end, "the period does not move until paid");
    // Not retried before its time, however often the tick runs.
    assert_eq!(w.cycle().await.retries, 0);

    w.advance(Duration::days(1)).await;
    assert_eq!(w.cycle().await.retries, 1);
    assert_eq!(w.subscription(&c, &id).await["status"], "past_due");

    // The customer fixes their card before the third attempt (day 3).
    w.save_card(&c, GOOD_CARD).await;
    w.advance(Duration::days(2)).await;
    assert_eq!(w.cycle().await.retries, 1);
    let recovered = w.wait_status(&c, &id, "active").await;
    assert_eq!(at(&recovered["current_period_start"]), end);

    let renewal = invoice_of_kind(&w.invoices(&c).await, "renewal");
    assert_eq!(renewal["status"], "paid");
    let attempts: Vec<String> = of_invoice(&payments(&w, &c).await, &renewal)
        .iter()
        .rev()
        .map(|p| format!("{}:{}", p["status"].as_str().unwrap_or(""), p["decline_code"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(attempts, vec!["failed:insufficient_funds", "failed:insufficient_funds", "success:"]);
    let events = w.events(&c, &id).await;
    assert_eq!(
        events,
        vec![
            "created",
            "activated",
            "renewal_invoiced",
            "payment_failed",
            "payment_retry",
            "payment_failed",
            "payment_retry",
            "recovered"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dunning_gives_up_after_the_last_retry_and_cancels_with_the_reason() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    w.save_card(&c, SOFT_DECLINE).await;

    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    w.wait_status(&c, &id, "past_due").await;
    for days in [1, 2, 2, 2] {
        w.advance(Duration::days(days)).await;
        assert_eq!(w.cycle().await.retries, 1, "one retry at each offset");
    }
    let canceled = w.wait_status(&c, &id, "canceled").await;
    assert_eq!(canceled["cancel_reason"], "dunning_exhausted");
    let renewal = invoice_of_kind(&w.invoices(&c).await, "renewal");
    assert_eq!(renewal["status"], "uncollectible");
    assert_eq!(of_invoice(&payments(&w, &c).await, &renewal).len(), 5, "the first attempt and four retries");

    // Nothing more happens, however far time goes.
    w.advance(Duration::days(40)).await;
    assert_eq!(w.cycle().await, Default::default());
    assert_eq!(of_invoice(&payments(&w, &c).await, &renewal).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_decline_is_never_retried() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    w.save_card(&c, HARD_DECLINE).await;

    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let canceled = w.wait_status(&c, &id, "canceled").await;
    assert_eq!(canceled["cancel_reason"], "payment_failed_hard_decline");
    for _ in 0..3 {
        w.advance(Duration::days(3)).await;
        assert_eq!(w.cycle().await.retries, 0);
    }
    let renewal = invoice_of_kind(&w.invoices(&c).await, "renewal");
    assert_eq!(renewal["status"], "uncollectible");
    let attempts = payments(&w, &c).await;
    let attempts = of_invoice(&attempts, &renewal);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["decline_code"], "card_declined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_with_a_saved_card_converts_to_its_paid_plan_at_its_end() {
    let w = Clocked::new().await;
    let c = w.customer().await;
    let (status, trial) =
        w.sub_call(Method::POST, "/v1/subscriptions/trial", &c.token, Some(json!({"trial_plan_id": TRIAL}))).await;
    assert_eq!(status, 201, "{trial}");
    let id = trial["data"]["id"].as_str().unwrap_or_default().to_owned();
    let trial_end = at(&w.subscription(&c, &id).await["trial_end"]);
    w.save_card(&c, GOOD_CARD).await;

    w.advance(trial_end - w.now() - Duration::hours(1)).await;
    assert_eq!(w.cycle().await.trials, 0, "not before its end");
    w.advance(Duration::hours(2)).await;
    w.cycle().await;
    let active = w.wait_status(&c, &id, "active").await;
    assert_eq!(active["plan_id"], BASIC, "the trial plan converts to Basic");
    assert_eq!(at(&active["current_period_start"]), trial_end, "the paid period starts where the trial ended");
    let invoice = invoice_of_kind(&w.invoices(&c).await, "trial_conversion");
    assert_eq!((invoice["status"].as_str(), invoice["total"].as_str()), (Some("paid"), Some("29.99")));
    assert_eq!(of_invoice(&payments(&w, &c).await, &invoice).len(), 1);
    assert_eq!(w.events(&c, &id).await, vec!["trial_started", "conversion_invoiced", "activated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_without_a_saved_card_expires_at_its_end() {
    let w = Clocked::new().await;
    let c = w.customer().await;
    let (_, trial) =
        w.sub_call(Method::POST, "/v1/subscriptions/trial", &c.token, Some(json!({"trial_plan_id": TRIAL}))).await;
    let id = trial["data"]["id"].as_str().unwrap_or_default().to_owned();
    w.advance(Duration::days(30) + Duration::minutes(5)).await;
    w.cycle().await;
    let expired = w.wait_status(&c, &id, "expired").await;
    assert_eq!(expired["cancel_reason"], "no_payment_method");
    assert!(w.invoices(&c).await.is_empty(), "no invoice is issued for a trial that cannot be charged");
    assert_eq!(w.events(&c, &id).await, vec!["trial_started", "expired"]);
}

/// Upgrades `c` from `from` to `to` and checks the proration against the domain's, to the minor unit, at some
/// second between just before and just after the request (the clock keeps running); the proration invoice's net.
async fn upgrade_and_check(w: &Clocked, c: &Customer, id: &str, to: i64, prices: (Money, Money)) -> Money {
    let sub = w.subscription(c, id).await;
    let (start, end) = (at(&sub["current_period_start"]), at(&sub["current_period_end"]));
    let before = w.now();
    let (status, changed) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"plan_id": to}))).await;
    let after = w.now();
    assert_eq!(status, 200, "{changed}");
    let currency = prices.0.currency();
    let got = |k: &str| {
        Money::parse(changed["data"]["proration"][k].as_str().unwrap_or(""), currency)
            .unwrap_or_else(|e| panic!("{k}: {e}"))
    };
    let (credit, charge, net) = (got("credit"), got("charge"), got("net"));
    let mut second = before.timestamp();
    let matched = loop {
        let t = DateTime::from_timestamp(second, 0).unwrap_or_else(|| panic!("time"));
        let p = prorate(Price { unit: prices.0, quantity: 1 }, Price { unit: prices.1, quantity: 1 }, start, end, t)
            .unwrap_or_else(|e| panic!("{e}"));
        if (p.credit, p.charge, p.net) == (credit, charge, net) {
            break true;
        }
        second += 1;
        if second > after.timestamp() + 1 {
            break false;
        }
    };
    assert!(matched, "proration {credit:?} {charge:?} {net:?} matches no second in [{before}, {after}]");
    assert_eq!(
        net.checked_sub(charge.checked_sub(credit).unwrap_or_else(|e| panic!("{e}"))).ok(),
        Some(Money::zero(currency))
    );
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_charges_its_proration_to_the_minor_unit_in_two_and_zero_decimal_currencies() {
    let w = Clocked::new().await;
    let c = w.customer().await;
    let id = w.subscribe(&c, BASIC, 1, GOOD_CARD).await;
    w.advance(Duration::days(10) + Duration::seconds(12_345)).await;
    let net = upgrade_and_check(&w, &c, &id, PRO, (usd("29.99"), usd("99.00"))).await;
    w.settle().await;
    let invoices = w.invoices(&c).await;
    let proration = invoice_of_kind(&invoices, "proration");
    assert_eq!(proration["total"].as_str(), Some(net.amount_string().as_str()));
    let paid = w.wait_status(&c, &id, "active").await;
    assert_eq!(paid["plan_id"], PRO);
    let proration = w.paid_invoice(&c, "proration").await;
    let history = payments(&w, &c).await;
    let charge = of_invoice(&history, &proration);
    assert_eq!(charge.len(), 1);
    assert_eq!(charge[0]["amount"].as_str(), Some(net.amount_string().as_str()), "charged exactly the net");

    // Yen has no minor unit: whole yen everywhere.
    let jpy = |s: &str| {
        Money::parse(s, Currency::from_code("JPY").unwrap_or_else(|| panic!("JPY"))).unwrap_or_else(|e| panic!("{e}"))
    };
    let small = w
        .plan(json!({"code": "jp-basic", "name": "JP Basic", "price": "1000", "currency": "JPY", "billing_cycle": "monthly", "features": {"api_calls": {"limit": 100}}}))
        .await;
    let big = w
        .plan(json!({"code": "jp-pro", "name": "JP Pro", "price": "3333", "currency": "JPY", "billing_cycle": "monthly", "features": {"api_calls": {"limit": 1000}}}))
        .await;
    let y = w.customer().await;
    let yid = w.subscribe(&y, small, 1, GOOD_CARD).await;
    w.advance(Duration::days(7) + Duration::seconds(777)).await;
    let net = upgrade_and_check(&w, &y, &yid, big, (jpy("1000"), jpy("3333"))).await;
    assert!(!net.amount_string().contains('.'), "{}", net.amount_string());
    let proration = w.paid_invoice(&y, "proration").await;
    assert_eq!(proration["total"].as_str(), Some(net.amount_string().as_str()));
    let history = payments(&w, &y).await;
    assert_eq!(of_invoice(&history, &proration)[0]["amount"].as_str(), Some(net.amount_string().as_str()));
    let events = w.events(&y, &yid).await;
    assert_eq!(events, vec!["created", "activated", "plan_changed", "invoice_paid"]);
}

/// `PUT /v1/subscriptions/{id}` with `body`: the proration part of the answer, which must be applied now.
async fn change_now(w: &Clocked, c: &Customer, id: &str, body: Value) -> Value {
    let (status, changed) = w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(body)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["data"]["scheduled"], false, "{changed}");
    changed["data"].clone()
}

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::from_code("USD").unwrap_or_else(|| panic!("USD"))).unwrap_or_else(|e| panic!("{e}"))
}

fn money(v: &Value) -> Money {
    usd(v.as_str().unwrap_or_else(|| panic!("not an amount: {v}")))
}

fn sum(amounts: impl IntoIterator<Item = Money>) -> Money {
    amounts.into_iter().fold(usd("0"), |a, b| a.checked_add(b).unwrap_or_else(|e| panic!("{e}")))
}

fn line_kinds(invoice: &Value) -> Vec<&str> {
    invoice["lines"].as_array().map(|l| l.iter().filter_map(|l| l["kind"].as_str()).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proration_below_the_minimum_charge_waits_for_the_next_invoice() {
    let w = Clocked::new().await;
    let big = w
        .plan(json!({"code": "big", "name": "Big", "price": "2000.00", "currency": "USD", "billing_cycle": "monthly", "features": {"api_calls": {"limit": 100000}}}))
        .await;
    let (x, xid, end) = subscribed(&w, BASIC).await;
    let (y, yid, _) = subscribed(&w, BASIC).await;
    w.advance(end - w.now() - Duration::hours(1)).await;

    // An hour before the end, a second seat costs about four cents: too little to charge on its own.
    let mut carried = Vec::new();
    for (c, id) in [(&x, &xid), (&y, &yid)] {
        let changed = change_now(&w, c, id, json!({"quantity": 2})).await;
        let net = money(&changed["proration"]["net"]);
        assert!(!net.is_zero() && net.minor() < usd("0.50").minor(), "{changed}");
        assert_eq!(changed["proration"]["carried_to_next_invoice"], true, "{changed}");
        assert!(changed["invoice_id"].is_null(), "{changed}");
        carried.push(net);
    }
    w.settle().await;
    for c in [&x, &y] {
        let invoices = w.invoices(c).await;
        assert_eq!(invoices.len(), 1, "no proration invoice: {invoices:?}");
    }

    // y then moves to a plan whose proration is worth charging: that invoice takes the waiting lines too.
    let changed = change_now(&w, &y, &yid, json!({"plan_id": big})).await;
    assert_eq!(changed["proration"]["carried_to_next_invoice"], false, "{changed}");
    let due = sum([carried[1], money(&changed["proration"]["net"])]);
    let proration = w.paid_invoice(&y, "proration").await;
    assert_eq!(proration["id"], changed["invoice_id"]);
    assert_eq!(money(&proration["total"]), due, "{proration}");
    assert_eq!(
        line_kinds(&proration),
        ["proration_credit", "proration_charge", "proration_credit", "proration_charge"],
        "its own lines, then the waiting ones"
    );
    let history = payments(&w, &y).await;
    let charge = of_invoice(&history, &proration);
    assert_eq!((charge.len(), charge[0]["amount"].as_str()), (1, Some(due.amount_string().as_str())));

    // At the end, x's renewal carries its waiting lines; y's has nothing left waiting.
    w.advance(Duration::hours(1) + Duration::minutes(1)).await;
    w.cycle().await;
    w.settle().await;
    for (c, id, expected, kinds) in [
        (&x, &xid, sum([usd("59.98"), carried[0]]), vec!["subscription", "proration_credit", "proration_charge"]),
        (&y, &yid, usd("4000.00"), vec!["subscription"]),
    ] {
        let renewal = w.paid_invoice(c, "renewal").await;
        assert_eq!(money(&renewal["total"]), expected, "{renewal}");
        assert_eq!(line_kinds(&renewal), kinds, "{renewal}");
        let history = payments(&w, c).await;
        assert_eq!(of_invoice(&history, &renewal)[0]["amount"].as_str(), Some(expected.amount_string().as_str()));
        assert_eq!(w.subscription(c, id).await["status"], "active");
    }
    assert!(w.failed_jobs().await.is_empty(), "{:?}", w.failed_jobs().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_proration_charge_puts_the_subscription_into_dunning_on_the_new_plan() {
    let w = Clocked::new().await;
    let c = w.customer().await;
    let id = w.subscribe(&c, BASIC, 1, GOOD_CARD).await;
    w.save_card(&c, SOFT_DECLINE).await;
    w.advance(Duration::days(5)).await;
    let (status, _) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"plan_id": PRO}))).await;
    assert_eq!(status, 200);
    let past_due = w.wait_status(&c, &id, "past_due").await;
    assert_eq!(past_due["plan_id"], PRO, "not silently back on the old plan");
    w.save_card(&c, GOOD_CARD).await;
    w.advance(Duration::days(1)).await;
    w.cycle().await;
    w.wait_status(&c, &id, "active").await;
    assert_eq!(invoice_of_kind(&w.invoices(&c).await, "proration")["status"], "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_takes_effect_at_the_period_end() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, PRO).await;
    let (status, changed) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"plan_id": BASIC}))).await;
    assert_eq!(status, 200, "{changed}");
    let sub = w.subscription(&c, &id).await;
    assert_eq!((sub["plan_id"].as_i64(), sub["pending_plan_id"].as_i64()), (Some(PRO), Some(BASIC)));

    w.advance(end - w.now() - Duration::hours(1)).await;
    w.cycle().await;
    assert_eq!(w.subscription(&c, &id).await["plan_id"], PRO, "Pro until the end");
    w.advance(Duration::hours(2)).await;
    w.cycle().await;
    let renewed = renewed_from(&w, &c, &id, end).await;
    assert_eq!((renewed["plan_id"].as_i64(), renewed["pending_plan_id"].as_i64()), (Some(BASIC), None));
    let renewal = invoice_of_kind(&w.invoices(&c).await, "renewal");
    assert_eq!((renewal["total"].as_str(), renewal["status"].as_str()), (Some("29.99"), Some("paid")));
    let events = w.events(&c, &id).await;
    assert_eq!(
        events,
        vec!["created", "activated", "plan_change_scheduled", "plan_changed", "renewal_invoiced", "renewed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_at_the_period_end_ends_it_without_a_renewal() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    let (status, _) = w.sub_call(Method::DELETE, &format!("/v1/subscriptions/{id}"), &c.token, None).await;
    assert_eq!(status, 200);
    w.advance(end - w.now() - Duration::minutes(5)).await;
    w.cycle().await;
    assert_eq!(w.subscription(&c, &id).await["status"], "active", "access until the end");
    w.advance(Duration::minutes(10)).await;
    w.cycle().await;
    let ended = w.wait_status(&c, &id, "canceled").await;
    assert_eq!(at(&ended["ended_at"]), end);
    assert_eq!(w.invoices(&c).await.len(), 1, "no renewal invoice");
    assert_eq!(payments(&w, &c).await.len(), 1);
    assert_eq!(w.events(&c, &id).await, vec!["created", "activated", "cancel_scheduled", "canceled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactivation_before_the_end_keeps_it_renewing() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    w.sub_call(Method::DELETE, &format!("/v1/subscriptions/{id}"), &c.token, None).await;
    w.advance(Duration::days(20)).await;
    let (status, body) = w.sub_call(Method::POST, &format!("/v1/subscriptions/{id}/reactivate"), &c.token, None).await;
    assert_eq!(status, 200, "{body}");
    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let renewed = renewed_from(&w, &c, &id, end).await;
    assert_eq!(renewed["status"], "active");
    // Reactivating after the end is refused: there is nothing scheduled to undo.
    let (status, _) = w.sub_call(Method::POST, &format!("/v1/subscriptions/{id}/reactivate"), &c.token, None).await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_subscription_unpaid_for_24_hours_expires_and_its_invoice_is_voided() {
    let w = Clocked::new().await;
    let c = w.customer().await;
    let (status, created) =
        w.sub_call(Method::POST, "/v1/subscriptions", &c.token, Some(json!({"plan_id": BASIC}))).await;
    assert_eq!(status, 201);
    let id = created["data"]["id"].as_str().unwrap_or_default().to_owned();
    w.advance(Duration::hours(23)).await;
    assert_eq!(w.cycle().await.expired, 0);
    assert_eq!(w.subscription(&c, &id).await["status"], "pending");
    w.advance(Duration::hours(1) + Duration::minutes(1)).await;
    assert_eq!(w.cycle().await.expired, 1);
    let expired = w.subscription(&c, &id).await;
    assert_eq!((expired["status"].as_str(), expired["cancel_reason"].as_str()), (Some("expired"), Some("unpaid")));
    assert_eq!(invoice_of_kind(&w.invoices(&c).await, "initial")["status"], "void");
    // The voided invoice cannot be paid any more.
    let body = json!({"subscription_id": id, "amount": "29.99", "currency": "USD", "card_number": GOOD_CARD, "card_expiry": "12/40", "card_cvv": "123", "cardholder_name": "Late Payer"});
    let (status, refused) = w.call(&w.pay, Method::POST, "/v1/payments/process", Some(&c.token), Some(body)).await;
    assert!(matches!(status, 404 | 409), "{status} {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_resets_at_the_period_boundary_and_limits_follow_an_upgrade_at_once() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    for _ in 0..5 {
        let (status, used) =
            w.sub_call(Method::POST, "/v1/usage/use", &c.token, Some(json!({"feature_name": "api_calls"}))).await;
        assert_eq!(status, 200, "{used}");
    }
    let (_, limits) = w.sub_call(Method::GET, "/v1/usage/limits", &c.token, None).await;
    assert_eq!(limits["data"]["limits"]["api_calls"]["limit"], 10_000);
    assert_eq!(limits["data"]["limits"]["api_calls"]["used"], 5);

    w.advance(Duration::days(3)).await;
    let (status, _) =
        w.sub_call(Method::PUT, &format!("/v1/subscriptions/{id}"), &c.token, Some(json!({"plan_id": PRO}))).await;
    assert_eq!(status, 200);
    let (_, limits) = w.sub_call(Method::GET, "/v1/usage/limits", &c.token, None).await;
    assert_eq!(limits["data"]["limits"]["api_calls"]["limit"], 100_000, "the new plan's limit at once: {limits}");
    assert_eq!(limits["data"]["limits"]["api_calls"]["used"], 5, "same period, same count");

    w.settle().await;
    w.advance_to(end + Duration::minutes(1)).await;
    w.cycle().await;
    let renewed = renewed_from(&w, &c, &id, end).await;
    let (_, limits) = w.sub_call(Method::GET, "/v1/usage/limits", &c.token, None).await;
    assert_eq!(limits["data"]["limits"]["api_calls"]["used"], 0, "a new period counts from zero: {limits}");
    assert_eq!(at(&limits["data"]["period_start"]), end);
    assert_eq!(at(&limits["data"]["reset_at"]), at(&renewed["current_period_end"]));
    let (status, used) =
        w.sub_call(Method::POST, "/v1/usage/use", &c.token, Some(json!({"feature_name": "api_calls"}))).await;
    assert_eq!((status, used["data"]["current_usage"].as_i64()), (200, Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_preview_changes_nothing_and_shows_what_the_change_then_does() {
    let w = Clocked::new().await;
    let (c, id, end) = subscribed(&w, BASIC).await;
    let before = w.subscription(&c, &id).await;
    let path = format!("/v1/subscriptions/{id}");
    let preview_of = |body: Value| {
        let (w, c, path) = (&w, &c, format!("{path}?preview=true"));
        async move {
            let (status, out) = w.sub_call(Method::PUT, &path, &c.token, Some(body)).await;
            assert_eq!(status, 200, "{out}");
            assert_eq!(out["data"]["preview"], true, "{out}");
            out["data"].clone()
        }
    };
    // (kind, quantity, unit amount) of each line: what a preview and the change share exactly (amounts prorated to
    // the second may differ by the seconds between the two calls).
    let shape = |invoice: &Value| -> Vec<(String, i64, String)> {
        invoice["lines"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|l| {
                        let text = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                        (text("kind"), l["quantity"].as_i64().unwrap_or_default(), text("unit_amount"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    let up = preview_of(json!({"plan_id": PRO})).await;
    assert_eq!((up["scheduled"].as_bool(), up["invoice"]["kind"].as_str()), (Some(false), Some("proration")), "{up}");
    assert_eq!(up["subscription"]["plan_id"], PRO, "what it would become");
    let after_preview = w.subscription(&c, &id).await;
    assert_eq!(
        (after_preview["plan_id"].clone(), after_preview["version"].clone()),
        (before["plan_id"].clone(), before["version"].clone())
    );
    assert_eq!(w.invoices(&c).await.len(), 1, "a preview issues nothing");

    let changed = change_now(&w, &c, &id, json!({"plan_id": PRO})).await;
    let (status, issued) = w
        .sub_call(
            Method::GET,
            &format!("/v1/invoices/{}", changed["invoice_id"].as_str().unwrap_or_default()),
            &c.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(shape(&up["invoice"]), shape(&issued["data"]));
    let off =
        money(&up["invoice"]["total"]).checked_sub(money(&issued["data"]["total"])).unwrap_or_else(|e| panic!("{e}"));
    assert!(off.minor().abs() <= 1, "the preview's total is the issued one's, to the second's cent: {off:?}");

    // A downgrade previews the renewal it leads to, which is then issued exactly.
    let down = preview_of(json!({"plan_id": BASIC})).await;
    assert_eq!(
        (down["scheduled"].as_bool(), down["invoice"]["kind"].as_str()),
        (Some(true), Some("renewal")),
        "{down}"
    );
    assert_eq!(down["invoice"]["total"], "29.99", "{down}");
    assert_eq!(at(&down["invoice"]["period_start"]), end);
    let (status, _) = w.sub_call(Method::PUT, &path, &c.token, Some(json!({"plan_id": BASIC}))).await;
    assert_eq!(status, 200);
    w.advance(end - w.now() + Duration::minutes(1)).await;
    w.cycle().await;
    let renewal = w.paid_invoice(&c, "renewal").await;
    assert_eq!(shape(&down["invoice"]), shape(&renewal));
    assert_eq!(
        (down["invoice"]["total"].clone(), down["invoice"]["period_end"].clone()),
        (renewal["total"].clone(), renewal["period_end"].clone())
    );
}
