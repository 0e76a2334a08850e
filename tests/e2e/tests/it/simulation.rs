//! Thirteen months of billing for 200 customers on the test clock, a day at a time, with every tick run at least
//! twice a day (twice here, and again by the worker's own scheduler), then the ledger's invariants:
//! - every invoice's total is the sum of its lines;
//! - every paid invoice has exactly one successful charge, of what it asked, and no invoice was charged twice;
//! - refunds never exceed their charge;
//! - every subscription's status agrees with its invoices and with its event log;
//! - usage billed equals usage accepted: every period's metered usage is on exactly one invoice (or waiting for
//!   one), unit for unit, once its period has ended without the subscription ending at once;
//! - no job is left in a failed list.
//!
//! The customers mix plans (monthly, yearly, trials, a base fee with seats, metered usage priced per unit, by
//! graduated or volume tiers, or by package), seats, cards (succeeding, soft-declining, hard-declining, declined at
//! the first payment) and actions (upgrades, downgrades, seat changes, pauses now or at the period end and resumes,
//! cancellations at the period end or at once, reactivations, card changes during dunning, refunds, usage), drawn
//! from a fixed seed so a failure replays.

use crate::clocked;

use std::collections::{BTreeMap, HashMap};

use billing_auth::Role;
use chrono::{Duration, Utc};
use clocked::{Clocked, Customer, GOOD_CARD, HARD_DECLINE, SOFT_DECLINE};
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;
use subscription_service::services::billing::Report;
use uuid::Uuid;

const CUSTOMERS: usize = 200;
const DAYS: i64 = 396;

/// xorshift64*: a fixed, dependency-free stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
enum Action {
    Subscribe { plan: i64, quantity: i64, first_card: &'static str },
    Trial,
    SaveCard(&'static str),
    ChangePlan(i64),
    CancelAtPeriodEnd,
    Reactivate,
    CancelNow,
    Refund,
    Use(i64),
    Seats(i64),
    Pause { now: bool },
    Resume,
}

/// The plans the simulation adds to the seeded catalog (all monthly, USD).
#[derive(Debug, Clone, Copy)]
struct Catalog {
    /// A little dearer than Basic, so that some upgrades' prorations fall below the minimum charge.
    plus: i64,
    /// 20.00 for 2 seats, 4.00 for each seat above.
    team: i64,
    /// `events` billed per unit, by graduated tiers, by volume tiers; `blocks` by packages of 10.
    per_unit: i64,
    graduated: i64,
    volume: i64,
    package: i64,
}

impl Catalog {
    async fn create(w: &Clocked) -> Self {
        let monthly = |code: &str, price: &str, extra: serde_json::Value| {
            let mut plan = json!({"code": code, "name": code, "price": price, "currency": "USD", "billing_cycle": "monthly",
                "features": {"api_calls": {"limit": 20000}}});
            if let (Some(plan), serde_json::Value::Object(extra)) = (plan.as_object_mut(), extra) {
                for (key, value) in extra {
                    if key == "features" {
                        plan["features"].as_object_mut().into_iter().for_each(|f| {
                            f.extend(value.as_object().cloned().unwrap_or_default());
                        });
                    } else {
                        plan.insert(key, value);
                    }
                }
            }
            plan
        };
        let tiers =
            |low: &str, high: &str| json!([{"up_to": 20, "unit_amount": low}, {"up_to": null, "unit_amount": high}]);
        Self {
            plus: w.plan(monthly("basic_plus", "30.39", json!({}))).await,
            team: w
                .plan(monthly("team", "20.00", json!({"per_seat": {"unit_amount": "4.00", "included_seats": 2}})))
                .await,
            per_unit: w
                .plan(monthly("metered_unit", "5.00", json!({"features": {"events": {"billing": "per_unit", "unit_amount": "0.013"}}})))
                .await,
            graduated: w
                .plan(monthly("metered_graduated", "8.00", json!({"features": {"events": {"billing": "graduated", "tiers": tiers("0.05", "0.0125")}}})))
                .await,
            volume: w
                .plan(monthly("metered_volume", "12.00", json!({"features": {"events": {"billing": "volume", "tiers": tiers("0.04", "0.0333")}}})))
                .await,
            package: w
                .plan(monthly("metered_package", "15.00", json!({"features": {"blocks": {"billing": "package", "package_size": 10, "package_amount": "1.25"}}})))
                .await,
        }
    }

    /// Every plan a customer may buy or change to.
    fn choices(&self) -> [i64; 11] {
        [2, 2, 3, 4, 5, self.team, self.team, self.per_unit, self.graduated, self.volume, self.package]
    }
}

struct Sim {
    customer: Customer,
    subscription: Option<String>,
}

/// The day's actions of each customer, drawn from the seed.
fn plan_for(rng: &mut Rng, catalog: &Catalog) -> Vec<(i64, Action)> {
    let mut actions = Vec::new();
    let start = i64::try_from(rng.below(28)).unwrap_or(0);
    if rng.chance(15) {
        actions.push((start, Action::Trial));
        if rng.chance(60) {
            actions.push((start + 5, Action::SaveCard(GOOD_CARD)));
        }
        actions.push((start + 45, Action::Use(3)));
        return actions;
    }
    let choices = catalog.choices();
    let pick = |rng: &mut Rng| choices[usize::try_from(rng.below(choices.len() as u64)).unwrap_or(0)];
    let plan = pick(rng);
    let quantity = i64::try_from(1 + rng.below(3)).unwrap_or(1);
    let first_card = if rng.chance(5) { HARD_DECLINE } else { GOOD_CARD };
    actions.push((start, Action::Subscribe { plan, quantity, first_card }));
    actions.push((start + 2, Action::Use(i64::try_from(1 + rng.below(20)).unwrap_or(1))));
    // A card that starts declining some day, and for some a fixed card a few days later.
    match rng.below(100) {
        0..=14 => {
            let day = start + 20 + i64::try_from(rng.below(250)).unwrap_or(0);
            actions.push((day, Action::SaveCard(SOFT_DECLINE)));
            // Usage while the next renewal is in dunning: it counts in the period the renewal would open.
            for later in [26, 31, 36, 41, 46] {
                actions.push((day + later, Action::Use(i64::try_from(1 + rng.below(40)).unwrap_or(1))));
            }
            if rng.chance(50) {
                actions.push((day + 33 + i64::try_from(rng.below(5)).unwrap_or(0), Action::SaveCard(GOOD_CARD)));
            }
        }
        15..=24 => {
            let day = start + 20 + i64::try_from(rng.below(250)).unwrap_or(0);
            actions.push((day, Action::SaveCard(HARD_DECLINE)));
        }
        _ => {}
    }
    // Metered customers use their features through the year.
    for _ in 0..rng.below(8) {
        let day = start + 2 + i64::try_from(rng.below(380)).unwrap_or(0);
        actions.push((day, Action::Use(i64::try_from(1 + rng.below(60)).unwrap_or(1))));
    }
    for _ in 0..rng.below(5) {
        let day = start + 3 + i64::try_from(rng.below(360)).unwrap_or(0);
        let action = match rng.below(12) {
            0 => Action::ChangePlan(catalog.plus),
            1 | 2 => Action::ChangePlan(pick(rng)),
            3 => Action::CancelAtPeriodEnd,
            4 => Action::Reactivate,
            5 => Action::CancelNow,
            6 => Action::Refund,
            7 => Action::Seats(i64::try_from(1 + rng.below(6)).unwrap_or(1)),
            8 | 9 => Action::Pause { now: rng.chance(50) },
            10 => Action::Resume,
            _ => Action::Use(i64::try_from(1 + rng.below(50)).unwrap_or(1)),
        };
        if matches!(action, Action::Pause { .. }) {
            // Most pauses end: a resume one to three months later.
            if rng.chance(75) {
                actions.push((day + 20 + i64::try_from(rng.below(70)).unwrap_or(0), Action::Resume));
            }
        }
        actions.push((day, action));
        if matches!(actions.last(), Some((_, Action::CancelAtPeriodEnd))) && rng.chance(50) {
            actions.push((day + 3, Action::Reactivate));
        }
    }
    actions
}

/// Customers straight in the database with a token from the service's issuer: registration (argon2) is tested
/// elsewhere and would only slow the year down.
async fn customers(w: &Clocked, n: usize) -> Vec<Customer> {
    let mut conn = w.sub_db().await;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = Uuid::now_v7();
        let email = format!("sim{i}-{}@example.com", id.simple());
        let user = subscription_service::db::models::NewUser {
            id: id.into(),
            email: &email,
            password_hash: "not-a-login",
            first_name: None,
            last_name: None,
            role: "user",
        };
        subscription_service::db::users::insert(&mut conn, &user).await.unwrap_or_else(|e| panic!("{e}"));
        // The clock will move a year ahead; access tokens are checked against the machine's time, so an hour
        // from now is long enough for the whole run.
        let token = w.state.jwt.issue(id, Role::User, Utc::now()).unwrap_or_else(|e| panic!("{e}"));
        out.push(Customer { token, id: id.to_string(), email });
    }
    out
}

/// Runs one action; the answer must never be a server error, and refusals must be the documented ones.
async fn act(w: &Clocked, sim: &mut Sim, action: &Action, tally: &mut BTreeMap<String, usize>) {
    let c = &sim.customer;
    let sub_path = |id: &str| format!("/v1/subscriptions/{id}");
    let (name, status) = match action {
        Action::Subscribe { plan, quantity, first_card } => {
            let (status, created) = w
                .sub_call(
                    Method::POST,
                    "/v1/subscriptions",
                    &c.token,
                    Some(json!({"plan_id": plan, "quantity": quantity})),
                )
                .await;
            assert_eq!(status, 201, "{created}");
            sim.subscription = created["data"]["id"].as_str().map(str::to_owned);
            let body = json!({
                "invoice_id": created["data"]["invoice_id"], "amount": created["data"]["amount"],
                "currency": created["data"]["currency"], "card_number": first_card, "card_expiry": "12/40",
                "card_cvv": "123", "cardholder_name": "Sim Customer",
            });
            let (status, answer) =
                w.call(&w.pay, Method::POST, "/v1/payments/process", Some(&c.token), Some(body)).await;
            assert!(status < 500, "pay_first_invoice answered {status}: {answer}");
            ("pay_first_invoice", status)
        }
        Action::Trial => {
            let (status, trial) =
                w.sub_call(Method::POST, "/v1/subscriptions/trial", &c.token, Some(json!({"trial_plan_id": 1}))).await;
            sim.subscription = trial["data"]["id"].as_str().map(str::to_owned);
            ("trial", status)
        }
        Action::SaveCard(card) => {
            let body = json!({"card_number": card, "card_expiry": "12/40", "card_cvv": "123", "cardholder_name": "Sim Customer"});
            let (status, _) = w.call(&w.pay, Method::POST, "/v1/payment-methods", Some(&c.token), Some(body)).await;
            ("save_card", status)
        }
        Action::ChangePlan(plan) => match &sim.subscription {
            Some(id) => {
                let (status, _) =
                    w.sub_call(Method::PUT, &sub_path(id), &c.token, Some(json!({"plan_id": plan}))).await;
                ("change_plan", status)
            }
            None => return,
        },
        Action::CancelAtPeriodEnd | Action::CancelNow => match &sim.subscription {
            Some(id) => {
                let now = matches!(action, Action::CancelNow);
                let path = if now { format!("{}?immediately=true", sub_path(id)) } else { sub_path(id) };
                let (status, _) = w.sub_call(Method::DELETE, &path, &c.token, None).await;
                (if now { "cancel_now" } else { "cancel_at_period_end" }, status)
            }
            None => return,
        },
        Action::Reactivate => match &sim.subscription {
            Some(id) => {
                let (status, _) =
                    w.sub_call(Method::POST, &format!("{}/reactivate", sub_path(id)), &c.token, None).await;
                ("reactivate", status)
            }
            None => return,
        },
        Action::Refund => {
            let (_, history) =
                w.call(&w.pay, Method::GET, "/v1/payments/history?limit=100", Some(&c.token), None).await;
            let Some(paid) = history["data"]["items"]
                .as_array()
                .and_then(|items| items.iter().find(|p| p["status"] == "success"))
                .cloned()
            else {
                return;
            };
            let id = paid["id"].as_str().unwrap_or_default();
            // Part of it, then more than what remains (refused), then the rest.
            let path = format!("/v1/payments/{id}/refund");
            // Refunds are the merchant's: the administrator makes them.
            let (first, _) = w.call(&w.pay, Method::POST, &path, Some(&w.admin), Some(json!({"amount": "1.00"}))).await;
            let (too_much, _) =
                w.call(&w.pay, Method::POST, &path, Some(&w.admin), Some(json!({"amount": "100000.00"}))).await;
            assert_eq!(too_much, 409, "a refund above the charge is refused");
            *tally.entry(format!("refund_partial {first}")).or_default() += 1;
            let (rest, _) = w.call(&w.pay, Method::POST, &path, Some(&w.admin), None).await;
            ("refund_rest", rest)
        }
        Action::Use(n) => {
            // Whichever of these the current plan meters is counted; the others are 403 `feature_not_in_plan`.
            for feature in ["events", "blocks"] {
                let body = json!({"feature_name": feature, "delta": n});
                let (status, _) = w.sub_call(Method::POST, "/v1/usage/use", &c.token, Some(body)).await;
                assert!(matches!(status, 200 | 403), "use {feature} answered {status}");
                *tally.entry(format!("use_{feature} {status}")).or_default() += 1;
            }
            let body = json!({"feature_name": "api_calls", "delta": n});
            let (status, _) = w.sub_call(Method::POST, "/v1/usage/use", &c.token, Some(body)).await;
            ("use", status)
        }
        Action::Seats(quantity) => match &sim.subscription {
            Some(id) => {
                let (status, _) =
                    w.sub_call(Method::PUT, &sub_path(id), &c.token, Some(json!({"quantity": quantity}))).await;
                ("seats", status)
            }
            None => return,
        },
        Action::Pause { now } => match &sim.subscription {
            Some(id) => {
                let at = if *now { "now" } else { "period_end" };
                let (status, _) = w
                    .sub_call(Method::POST, &format!("{}/pause", sub_path(id)), &c.token, Some(json!({"at": at})))
                    .await;
                (if *now { "pause_now" } else { "pause_at_period_end" }, status)
            }
            None => return,
        },
        Action::Resume => match &sim.subscription {
            Some(id) => {
                let (status, _) = w.sub_call(Method::POST, &format!("{}/resume", sub_path(id)), &c.token, None).await;
                ("resume", status)
            }
            None => return,
        },
    };
    assert!(status < 500, "{name} answered {status}");
    // 402 a declined first payment, 403 usage without access, 409 a change the status does not allow, 422 a
    // change to the plan it already has, 429 usage over the limit.
    assert!(matches!(status, 200..=202 | 402 | 403 | 409 | 422 | 429), "{name} answered {status}");
    *tally.entry(format!("{name} {status}")).or_default() += 1;
}

#[derive(Debug, QueryableByName)]
struct InvoiceFact {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    subscription_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Numeric)]
    total: Decimal,
    #[diesel(sql_type = Numeric)]
    lines_total: Decimal,
    #[diesel(sql_type = Numeric)]
    amount_paid: Decimal,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    paid_by_transaction_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_attempt_at: Option<chrono::DateTime<Utc>>,
}

#[derive(Debug, QueryableByName)]
struct ChargeFact {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    invoice_id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Numeric)]
    refunded: Decimal,
}

#[derive(Debug, QueryableByName)]
struct SubscriptionFact {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    cancel_reason: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    current_period_start: Option<chrono::DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    current_period_end: Option<chrono::DateTime<Utc>>,
}

/// A period's accepted usage of a billed feature and the units its usage lines bill (on any invoice, or waiting).
#[derive(Debug, QueryableByName)]
struct UsageFact {
    #[diesel(sql_type = SqlUuid)]
    subscription_id: Uuid,
    #[diesel(sql_type = Text)]
    feature: String,
    #[diesel(sql_type = Timestamptz)]
    period_start: chrono::DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    used: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    billed: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    invoices: i64,
}

#[derive(Debug, QueryableByName)]
struct EventFact {
    #[diesel(sql_type = SqlUuid)]
    subscription_id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    from_status: Option<String>,
    #[diesel(sql_type = Text)]
    to_status: String,
    #[diesel(sql_type = Text)]
    event_type: String,
}

#[derive(Debug, QueryableByName)]
struct CreditFact {
    #[diesel(sql_type = SqlUuid)]
    invoice_id: Uuid,
    #[diesel(sql_type = Numeric)]
    credited: Decimal,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    notes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    numbers: i64,
}

/// Proration lines carried to a later invoice: what still waits, and what was taken but is not on its invoice.
#[derive(Debug, QueryableByName)]
struct CarriedFact {
    #[diesel(sql_type = SqlUuid)]
    subscription_id: Uuid,
    #[diesel(sql_type = Numeric)]
    waiting: Decimal,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    missing_from_invoice: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirteen_months_of_billing_keep_the_ledger_consistent() {
    let w = Clocked::new().await;
    let mut rng = Rng(0x5EED_2026_1121);
    let catalog = Catalog::create(&w).await;
    let people = customers(&w, CUSTOMERS).await;
    let mut sims: Vec<Sim> = people.into_iter().map(|customer| Sim { customer, subscription: None }).collect();
    let schedules: Vec<Vec<(i64, Action)>> = (0..CUSTOMERS).map(|_| plan_for(&mut rng, &catalog)).collect();
    let mut by_day: HashMap<i64, Vec<(usize, Action)>> = HashMap::new();
    for (who, schedule) in schedules.into_iter().enumerate() {
        for (day, action) in schedule {
            by_day.entry(day).or_default().push((who, action));
        }
    }
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut ticks = Report::default();
    let started = std::time::Instant::now();
    for day in 0..=DAYS {
        let today = by_day.remove(&day).unwrap_or_default();
        for (who, action) in &today {
            act(&w, &mut sims[*who], action, &mut tally).await;
        }
        if !today.is_empty() {
            w.settle().await;
        }
        ticks += w.cycle().await;
        if day % 30 == 0 {
            // The worker's own scheduler takes part of the work too; these are the explicit ticks' shares.
            eprintln!("day {day:>3}/{DAYS}: {ticks:?} so far by the test's ticks ({:.0?})", started.elapsed());
        }
        w.advance(Duration::days(1)).await;
    }
    w.cycle().await;
    eprintln!("actions: {tally:?}");

    let failed = w.failed_jobs().await;
    assert!(failed.is_empty(), "jobs left in a failed list: {failed:#?}");
    check_ledger(&w).await;
}

async fn check_ledger(w: &Clocked) {
    let mut sub_db = w.sub_db().await;
    let mut pay_db = w.pay_db().await;
    let invoices: Vec<InvoiceFact> = diesel::sql_query(
        "SELECT i.id, i.subscription_id, i.status, i.kind, i.total, COALESCE(SUM(l.amount), 0) AS lines_total,
                i.amount_paid, i.paid_by_transaction_id, i.next_attempt_at
         FROM invoices i LEFT JOIN invoice_lines l ON l.invoice_id = i.id GROUP BY i.id",
    )
    .load(&mut sub_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let charges: Vec<ChargeFact> = diesel::sql_query(
        "SELECT t.id, t.invoice_id, t.status, t.amount,
                COALESCE((SELECT SUM(r.amount) FROM refunds r WHERE r.transaction_id = t.id AND r.status <> 'failed'), 0) AS refunded
         FROM transactions t",
    )
    .load(&mut pay_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let subscriptions: Vec<SubscriptionFact> = diesel::sql_query(
        "SELECT id, status, cancel_reason, current_period_start, current_period_end FROM subscriptions",
    )
    .load(&mut sub_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<EventFact> = diesel::sql_query(
        "SELECT subscription_id, from_status, to_status, event_type FROM subscription_events ORDER BY subscription_id, id",
    )
    .load(&mut sub_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let carried: Vec<CarriedFact> = diesel::sql_query(
        "SELECT p.subscription_id,
                COALESCE(SUM(p.amount) FILTER (WHERE p.invoice_id IS NULL), 0) AS waiting,
                COUNT(*) FILTER (WHERE p.invoice_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM invoice_lines l
                    WHERE l.invoice_id = p.invoice_id AND l.kind = p.kind AND l.amount = p.amount
                )) AS missing_from_invoice
         FROM pending_invoice_items p GROUP BY p.subscription_id",
    )
    .load(&mut sub_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for c in &carried {
        // Everything in the simulation bills in USD, whose minimum charge is 0.50.
        let id = c.subscription_id;
        assert!(c.waiting >= Decimal::ZERO && c.waiting < Decimal::new(50, 2), "{id} has {} waiting", c.waiting);
        assert_eq!(c.missing_from_invoice, 0, "{id}: carried lines taken but not on their invoice");
    }
    let billed = carried.iter().filter(|c| c.waiting.is_zero()).count();
    eprintln!("subscriptions that carried a small proration: {}, since invoiced: {billed}", carried.len());
    assert!(billed > 0, "the year carried no small proration to a later invoice");
    let renewals = invoices.iter().filter(|i| i.kind == "renewal").count();
    let retried = invoices.iter().filter(|i| i.status == "uncollectible").count();
    assert!(renewals > 1_000 && charges.len() > 1_500, "{renewals} renewals, {} charges", charges.len());
    assert!(retried > 10, "dunning ran its course {retried} times");

    // Every invoice's total is the sum of its lines.
    for i in &invoices {
        assert_eq!(i.total, i.lines_total, "invoice {} total vs lines", i.id);
    }
    // Every paid invoice has exactly one successful charge, of what it asked; no invoice is charged twice; no
    // successful charge is for an invoice that is not paid.
    let mut successes: HashMap<Uuid, Vec<&ChargeFact>> = HashMap::new();
    for c in charges.iter().filter(|c| c.status == "succeeded") {
        successes.entry(c.invoice_id).or_default().push(c);
    }
    let by_id: HashMap<Uuid, &InvoiceFact> = invoices.iter().map(|i| (i.id, i)).collect();
    for (invoice, paid) in &successes {
        assert_eq!(paid.len(), 1, "invoice {invoice} was charged {} times", paid.len());
        let i = by_id.get(invoice).unwrap_or_else(|| panic!("a charge for an unknown invoice {invoice}"));
        assert_eq!(i.status, "paid", "invoice {invoice} was charged but is {}", i.status);
        assert_eq!((i.paid_by_transaction_id, i.amount_paid), (Some(paid[0].id), paid[0].amount), "invoice {invoice}");
    }
    for i in invoices.iter().filter(|i| i.status == "paid" && !i.amount_paid.is_zero()) {
        assert!(successes.contains_key(&i.id), "paid invoice {} has no successful charge", i.id);
    }
    // Refunds never exceed their charge.
    for c in &charges {
        assert!(c.refunded <= c.amount, "charge {} refunded {} of {}", c.id, c.refunded, c.amount);
        assert!(c.status == "succeeded" || c.refunded.is_zero(), "charge {} is {} but refunded", c.id, c.status);
    }
    assert!(charges.iter().any(|c| !c.refunded.is_zero()), "the year had refunds");
    // Every refund of an invoice's payment is on that invoice's credit notes, to the cent, and no credit note
    // number is used twice.
    let credited: Vec<CreditFact> = diesel::sql_query(
        "SELECT invoice_id, SUM(amount) AS credited, COUNT(*) AS notes, COUNT(DISTINCT number) AS numbers
         FROM credit_notes GROUP BY invoice_id",
    )
    .load(&mut sub_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let credited: HashMap<Uuid, &CreditFact> = credited.iter().map(|c| (c.invoice_id, c)).collect();
    for (invoice, paid) in &successes {
        let notes = credited.get(invoice).map_or(Decimal::ZERO, |c| c.credited);
        assert_eq!(notes, paid[0].refunded, "invoice {invoice}: credit notes vs refunds of its payment");
    }
    assert!(credited.values().all(|c| c.notes == c.numbers), "a credit note number used twice");
    assert!(!credited.is_empty(), "the year issued credit notes");

    // Usage billed equals usage accepted. `events` is billed per unit or by tiers with nothing included (a line's
    // quantity is the units), `blocks` by packages of 10. A period's usage is billed once, in full, or (a
    // subscription ended at once, or ended in dunning) not at all; every period a running subscription has left is
    // billed.
    let usage: Vec<UsageFact> = diesel::sql_query(
        "SELECT c.subscription_id, c.feature, c.period_start, c.used,
                COALESCE(l.billed, 0) + COALESCE(p.billed, 0) AS billed,
                COALESCE(l.invoices, 0) + COALESCE(p.invoices, 0) AS invoices
         FROM usage_counters c
         LEFT JOIN (SELECT i.subscription_id, l.feature, l.period_start, SUM(l.quantity)::bigint AS billed,
                           COUNT(DISTINCT l.invoice_id) AS invoices
                    FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id WHERE l.kind = 'usage'
                    GROUP BY 1, 2, 3) l
           ON l.subscription_id = c.subscription_id AND l.feature = c.feature AND l.period_start = c.period_start
         LEFT JOIN (SELECT subscription_id, feature, period_start, SUM(quantity)::bigint AS billed,
                           1::bigint AS invoices
                    FROM pending_invoice_items WHERE kind = 'usage' AND invoice_id IS NULL GROUP BY 1, 2, 3) p
           ON p.subscription_id = c.subscription_id AND p.feature = c.feature AND p.period_start = c.period_start
         WHERE c.feature IN ('events', 'blocks') AND c.used > 0",
    )
    .load(&mut sub_db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let by_sub: HashMap<Uuid, &SubscriptionFact> = subscriptions.iter().map(|s| (s.id, s)).collect();
    let (mut accepted, mut billed_units) = (0_i64, 0_i64);
    for u in &usage {
        let expected = if u.feature == "blocks" { (u.used + 9) / 10 } else { u.used };
        let what = format!(
            "{} {} from {}: {} used, {} billed",
            u.subscription_id, u.feature, u.period_start, u.used, u.billed
        );
        assert!(u.billed == 0 || (u.billed == expected && u.invoices == 1), "billed in part or twice: {what}");
        let sub = by_sub.get(&u.subscription_id).unwrap_or_else(|| panic!("usage of an unknown subscription {what}"));
        let running = matches!(sub.status.as_str(), "active" | "past_due" | "paused");
        if running && sub.current_period_start.is_some_and(|start| u.period_start < start) {
            assert_eq!(u.billed, expected, "a period the subscription left is not billed: {what}");
        }
        accepted += u.used;
        billed_units += if u.billed == 0 { 0 } else { u.used };
    }
    eprintln!("metered usage: {} periods, {accepted} units accepted, {billed_units} billed", usage.len());
    assert!(billed_units > 0 && usage.iter().any(|u| u.feature == "blocks" && u.billed > 0), "the year billed usage");

    // Every subscription's status agrees with its event log and its invoices.
    let mut log: HashMap<Uuid, Vec<&EventFact>> = HashMap::new();
    for e in &events {
        log.entry(e.subscription_id).or_default().push(e);
    }
    let now = w.now();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for s in &subscriptions {
        *statuses.entry(format!("{} {}", s.status, s.cancel_reason.as_deref().unwrap_or(""))).or_default() += 1;
        let history = log.get(&s.id).unwrap_or_else(|| panic!("subscription {} has no events", s.id));
        assert_eq!(history.iter().next().and_then(|e| e.from_status.as_deref()), None, "{} starts from nothing", s.id);
        for pair in history.windows(2) {
            assert_eq!(
                pair[1].from_status.as_deref(),
                Some(pair[0].to_status.as_str()),
                "{}: {} after {}",
                s.id,
                pair[1].event_type,
                pair[0].event_type
            );
        }
        assert_eq!(history.last().map(|e| e.to_status.as_str()), Some(s.status.as_str()), "{} status vs log", s.id);
        let mine: Vec<&InvoiceFact> = invoices.iter().filter(|i| i.subscription_id == Some(s.id)).collect();
        // The usage of a period that ended with a pause or a cancellation is billed on an invoice of its own
        // (`final`), whose dunning runs beside whatever the subscription does next.
        let finals_retrying =
            mine.iter().filter(|i| i.status == "open" && i.kind == "final").all(|i| i.next_attempt_at.is_some());
        assert!(finals_retrying, "{}: an open final invoice without a retry planned", s.id);
        let open: Vec<&&InvoiceFact> = mine.iter().filter(|i| i.status == "open" && i.kind != "final").collect();
        match s.status.as_str() {
            "paused" => assert!(open.is_empty(), "paused {} has open invoices {open:?}", s.id),
            "active" => {
                assert!(open.is_empty(), "active {} has open invoices {open:?}", s.id);
                let story: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
                assert!(
                    s.current_period_end.is_some_and(|end| end > now),
                    "active {} is behind its period (ends {:?}, now {now}); events {story:?}; invoices {mine:#?}",
                    s.id,
                    s.current_period_end
                );
            }
            "past_due" => {
                assert_eq!(open.len(), 1, "past-due {} has {} open invoices", s.id, open.len());
                assert!(open[0].next_attempt_at.is_some(), "past-due {} has no retry planned", s.id);
            }
            "canceled" | "expired" => {
                assert!(open.is_empty(), "ended {} still has open invoices {open:?}", s.id);
                if matches!(s.cancel_reason.as_deref(), Some("dunning_exhausted" | "payment_failed_hard_decline")) {
                    assert!(
                        mine.iter().any(|i| i.status == "uncollectible"),
                        "{} ended by dunning without an uncollectible invoice",
                        s.id
                    );
                }
                if s.cancel_reason.as_deref() == Some("unpaid") {
                    assert!(mine.iter().any(|i| i.kind == "initial" && i.status == "void"), "{} expired unpaid", s.id);
                }
            }
            "trial" => panic!("trial {} outlived its 30 days", s.id),
            "pending" => panic!("pending {} outlived its 24 hours", s.id),
            other => panic!("unknown status {other}"),
        }
    }
    eprintln!("final statuses: {statuses:?}");
    for expected in ["paused", "resumed", "pause_scheduled"] {
        assert!(events.iter().any(|e| e.event_type == expected), "no subscription was ever {expected}");
    }
    for expected in [
        "active ",
        "canceled dunning_exhausted",
        "canceled payment_failed_hard_decline",
        "expired unpaid",
        "expired no_payment_method",
    ] {
        assert!(statuses.keys().any(|k| k == expected), "no subscription ended as {expected:?}: {statuses:?}");
    }
}
