//! The billing cycle's tick, driven by the service's clock: renewals at the period end, dunning retries, trial
//! ends, scheduled downgrades and cancellations, and unpaid subscriptions expiring.
//!
//! The scheduler's tick ([`run_due`]) only finds what is due and writes the next step in one transaction each (an
//! invoice, an attempt number, an outbox job); the queue handlers in `jobs/` talk to the payment service. Every
//! step checks the state it acts on again under a row lock, so a tick or a job that runs twice, or races a copy of
//! itself, changes nothing the second time.

use std::collections::BTreeMap;

use billing_domain::invoice::Line;
use billing_domain::{
    HistoryEntry, InvoiceId, InvoiceKind, InvoiceStatus, Money, SubscriptionEvent, SubscriptionId, SubscriptionStatus,
};
use billing_queue::{NewJob, Payload, Queue, QueueName, outbox};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use uuid::Uuid;

use crate::db;
use crate::db::models::{SubscriptionChanges, SubscriptionRow};
use crate::error::ServiceError;
use crate::services::invoices::{self, InvoiceDraft};
use crate::services::plans::Plan;
use crate::services::settlement::advance_period;
use crate::services::subscriptions::{log_event, transition};
use crate::state::AppState;

/// How many rows one step takes at a time.
const BATCH: i64 = 100;
/// How many batches one tick takes per step at most, so one tick stays short; the next tick continues.
const MAX_BATCHES: usize = 20;
/// How many rows of a batch one process works on at once, at most.
const MAX_AT_ONCE: usize = 8;

/// What one pass of [`run_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Renewal invoices created (or subscriptions ended or changed at their period end).
    pub renewals: usize,
    /// Dunning retries started.
    pub retries: usize,
    /// Trial ends handed to `q:sub:trial_payment`.
    pub trials: usize,
    /// Pending subscriptions expired unpaid.
    pub expired: usize,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, other: Self) {
        self.renewals += other.renewals;
        self.retries += other.retries;
        self.trials += other.trials;
        self.expired += other.expired;
    }
}

/// A stable job id for `key`: the queue stores one job per id, so a tick that finds the same work twice enqueues
/// it once.
fn job_id(key: &str) -> Uuid {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// `q:sub:payment_initiation`: charge attempt `attempt` of an invoice to the user's default payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeAttempt {
    pub invoice_id: InvoiceId,
    pub attempt: i32,
}

impl Payload for ChargeAttempt {
    const QUEUE: QueueName = QueueName::SubPaymentInitiation;
    const ACTION: &'static str = "charge";
}

/// `q:sub:trial_payment`: a trial reached its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialEnded {
    pub subscription_id: SubscriptionId,
}

impl Payload for TrialEnded {
    const QUEUE: QueueName = QueueName::SubTrialPayment;
    const ACTION: &'static str = "trial_end";
}

/// Numbers the invoice's next charge attempt and puts its job in the outbox, in the caller's transaction; the
/// outbox row and the job, to send once committed.
pub async fn queue_attempt(conn: &mut AsyncPgConnection, invoice: InvoiceId) -> Result<(i64, NewJob), ServiceError> {
    let attempt = db::invoices::start_attempt(conn, invoice).await?;
    let job = attempt_job(invoice, attempt);
    let row = outbox::push(conn, QueueName::SubPaymentInitiation.as_str(), &job, None).await?;
    Ok((row, job))
}

/// The charge key of attempt `attempt` of an invoice: the same attempt is the same charge, however often sent.
pub fn attempt_key(invoice: InvoiceId, attempt: i32) -> String {
    format!("invoice:{invoice}:attempt:{attempt}")
}

/// The job of an invoice's charge attempt (one job per attempt, however often it is pushed).
pub fn attempt_job(invoice: InvoiceId, attempt: i32) -> NewJob {
    let key = attempt_key(invoice, attempt);
    NewJob { id: job_id(&key), ..ChargeAttempt { invoice_id: invoice, attempt }.job(key) }
        .correlated(invoice.to_string())
}

fn queue(state: &AppState, name: QueueName) -> Queue {
    Queue::new(state.infra.redis.clone(), name)
}

/// Pushes committed outbox rows now (the relay stays the guarantee).
pub async fn send(state: &AppState, name: QueueName, jobs: Vec<(i64, NewJob)>) {
    let queue = queue(state, name);
    for (row, job) in jobs {
        outbox::send_now(&state.infra.db, &queue, row, job).await;
    }
}

/// Runs every step once: renewals, retries, trial ends, pending expiry.
pub async fn run_due(state: &AppState) -> Result<Report, ServiceError> {
    Ok(Report {
        renewals: renew_due(state).await?,
        retries: retry_due(state).await?,
        trials: trials_due(state).await?,
        expired: expire_pending(state).await?,
    })
}

/// Runs `one` on every id `find` returns, batch after batch; a row another process is changing is left to the
/// next tick.
async fn each_due<Id: Copy + std::fmt::Display, F, G>(
    state: &AppState,
    step: &str,
    find: F,
    one: G,
) -> Result<usize, ServiceError>
where
    F: AsyncFn(&mut AsyncPgConnection, DateTime<Utc>) -> Result<Vec<Id>, billing_infra::DbError>,
    G: AsyncFn(&AppState, Id) -> Result<bool, ServiceError>,
{
    // Rows of a batch are independent (each its own transaction under its own row lock): several at once,
    // leaving half the pool to the queue handlers.
    let at_once = (state.infra.settings.database.pool_max_size / 2).clamp(1, MAX_AT_ONCE);
    let one = &one;
    let mut done = 0;
    for _ in 0..MAX_BATCHES {
        let now = state.now();
        let ids = find(&mut *state.conn().await?, now).await?;
        let mut progressed = 0;
        let results: Vec<_> = futures_util::stream::iter(ids.iter().copied())
            .map(|id| async move { (id, one(state, id).await) })
            .buffer_unordered(at_once)
            .collect()
            .await;
        for (id, result) in results {
            match result {
                Ok(true) => progressed += 1,
                Ok(false) => {}
                Err(ServiceError::ConcurrentUpdate) => {}
                Err(err @ ServiceError::Unavailable(_)) => return Err(err),
                Err(err) => tracing::error!(step, id = %id, error = %err, "billing step failed; the next tick retries"),
            }
        }
        done += progressed;
        if ids.len() < usize::try_from(BATCH).unwrap_or(0) || progressed == 0 {
            break;
        }
    }
    Ok(done)
}

/// Step 1: every active subscription at its period end is ended (a scheduled cancellation), moved to its
/// scheduled plan, and invoiced for the next period and the usage of the one that ended, with the first charge
/// attempt queued.
pub async fn renew_due(state: &AppState) -> Result<usize, ServiceError> {
    // Usage is billed from PostgreSQL: what Redis accepted before the periods ended is folded first.
    crate::services::usage::sync(state).await?;
    each_due(state, "renewals", async |conn, now| db::subscriptions::renewals_due(conn, now, BATCH).await, renew_one)
        .await
}

async fn renew_one(state: &AppState, id: SubscriptionId) -> Result<bool, ServiceError> {
    let now = state.now();
    let plans = state.plans.all(&state.infra.db).await?;
    let result = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(sub) = db::subscriptions::find_for_update(conn, id).await? else { return Ok(None) };
            let Some(end) = sub.current_period_end.filter(|end| *end <= now) else { return Ok(None) };
            if sub.status != SubscriptionStatus::Active
                || db::invoices::for_period(conn, sub.id, InvoiceKind::Renewal, end).await?.is_some()
            {
                return Ok(None);
            }
            // The plan in effect during the period that ended prices its usage, whatever comes next.
            let ended_plan = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
            let ended_period = (sub.current_period_start.unwrap_or(end), end);
            let used = folded_usage(conn, &sub, ended_plan, ended_period.0).await?;
            let usage = usage_lines(ended_plan, &used, ended_period)?;
            if sub.cancel_at_period_end {
                let (invoice, job) = bill_usage_alone(conn, &sub, ended_plan, ended_period, usage, now).await?;
                let changes = SubscriptionChanges {
                    ended_at: Some(Some(end)),
                    cancel_at_period_end: Some(false),
                    pause_at: Some(None),
                    ..Default::default()
                };
                let data = json!({"at_period_end": true, "reason": sub.cancel_reason, "final_invoice_id": invoice});
                transition(conn, &sub, SubscriptionEvent::Cancel, HistoryEntry::Canceled, changes, data, now).await?;
                return Ok(Some(job));
            }
            if sub.pause_at.is_some_and(|at| at <= end) {
                let (invoice, job) = bill_usage_alone(conn, &sub, ended_plan, ended_period, usage, now).await?;
                let changes =
                    SubscriptionChanges { pause_at: Some(None), paused_at: Some(Some(end)), ..Default::default() };
                let data = json!({"at_period_end": true, "usage_invoice_id": invoice});
                transition(conn, &sub, SubscriptionEvent::Pause, HistoryEntry::Paused, changes, data, now).await?;
                return Ok(Some(job));
            }
            let NextPeriod { plan, period, anchor } = next_period(&sub, &plans, end)?;
            let sub = match sub.pending_plan_id {
                Some(next) => apply_scheduled_change(conn, &sub, next, anchor, end, now).await?,
                None => sub,
            };
            let draft = renewal_draft(&sub, plan, sub.quantity, period, end, usage)?;
            let draft_row = invoices::insert_draft(conn, &draft).await?;
            // The total may differ from the plan's price: lines carried forward from earlier prorations join it.
            let invoice = invoices::finalize(conn, draft_row.id, now).await?;
            let due = Money::from_decimal(invoice.amount_due, plan.price.currency()).map_err(ServiceError::internal)?;
            let data = json!({"invoice_id": invoice.id, "period_start": period.0, "period_end": period.1, "amount": due.amount_string(), "currency": due.currency().code()});
            log_event(conn, sub.id, HistoryEntry::RenewalInvoiced, Some(sub.status), sub.status, data.clone(), now).await?;
            if due.is_zero() {
                let paid = db::invoices::mark_paid(conn, invoice.id, rust_decimal::Decimal::ZERO, None, None, now).await?;
                advance_period(conn, &sub, &paid, data, now).await?;
                return Ok(Some(None));
            }
            let (row, job) = queue_attempt(conn, invoice.id).await?;
            Ok(Some(Some((row, job))))
        })
        .await?;
    // A tick racing this one waits on the subscription's row lock, then finds the invoice made here.
    let Some(job) = result else { return Ok(false) };
    send(state, QueueName::SubPaymentInitiation, job.into_iter().collect()).await;
    Ok(true)
}

/// The period a renewal at `end` opens on `plan`, for a subscription anchored at `anchor`.
fn renewal_period(plan: &Plan, anchor: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let (_, start, next_end) = plan.cycle.period_at(anchor, end);
    if start == end { (end, next_end) } else { (end, plan.cycle.period_end(end, 0)) }
}

/// What `sub`'s renewal at its period end `end` opens.
pub struct NextPeriod<'p> {
    /// The plan it then has: its own, or the one scheduled for the period end.
    pub plan: &'p Plan,
    pub period: (DateTime<Utc>, DateTime<Utc>),
    /// The billing anchor from then on.
    pub anchor: DateTime<Utc>,
}

/// The period `sub`'s renewal at `end` opens. A change of cycle restarts the billing anchor at the period end;
/// otherwise the anchor stays (a month anchored on the 31st renews on the 30th, then the 31st again).
pub fn next_period<'p>(
    sub: &SubscriptionRow,
    plans: &'p [Plan],
    end: DateTime<Utc>,
) -> Result<NextPeriod<'p>, ServiceError> {
    let find = |id: i32| plans.iter().find(|p| p.id == id).ok_or(ServiceError::PlanNotFound);
    let (current, plan) = (find(sub.plan_id)?, find(sub.pending_plan_id.unwrap_or(sub.plan_id))?);
    let anchor = if plan.cycle == current.cycle { sub.billing_anchor.unwrap_or(end) } else { end };
    Ok(NextPeriod { plan, period: renewal_period(plan, anchor, end), anchor })
}

/// What `sub` used of each billed feature of `plan` in the period starting at `start`, as folded into PostgreSQL,
/// leaving out features whose usage of that period was billed already (early, by an upgrade).
pub async fn folded_usage(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    plan: &Plan,
    start: DateTime<Utc>,
) -> Result<BTreeMap<String, u64>, ServiceError> {
    let billed = db::invoices::usage_billed(conn, sub.id, start).await?;
    let mut used = BTreeMap::new();
    for (feature, _) in plan.features.billed().filter(|(f, _)| !billed.iter().any(|b| b == f)) {
        let n = db::usage::used(conn, sub.id, feature, start).await?;
        used.insert(feature.to_owned(), u64::try_from(n).unwrap_or(0));
    }
    Ok(used)
}

/// The usage lines of a `period` under `plan`'s billed features, given what was `used` of each: one per feature,
/// one per tier reached for graduated tiers (see `billing_domain::pricing`). Hard-limited and unlimited features
/// are not billed, nor features missing from `used` (billed already).
pub fn usage_lines(
    plan: &Plan,
    used: &BTreeMap<String, u64>,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<Line>, ServiceError> {
    let mut lines = Vec::new();
    for (feature, price) in plan.features.billed() {
        let Some(&units) = used.get(feature) else { continue };
        let charges = price.charges(units, plan.price.currency()).map_err(ServiceError::internal)?;
        for charge in &charges {
            lines.push(Line::usage(feature, charge, period).map_err(ServiceError::internal)?);
        }
    }
    Ok(lines)
}

/// The invoice `sub`'s period end would issue if it came now: the next period's fee (on the plan and seats it
/// will have, a scheduled downgrade included), the usage counted so far, and prorations waiting for it; for a
/// subscription ending at its period end, its final usage. Nothing is written.
pub async fn upcoming(state: &AppState, sub: &SubscriptionRow) -> Result<InvoiceDraft, ServiceError> {
    let plans = state.plans.all(&state.infra.db).await?;
    let (Some(start), Some(end)) = (sub.current_period_start, sub.current_period_end) else {
        return Err(ServiceError::NoActiveSubscription);
    };
    let plan = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
    // As the renewal will: what Redis accepted, folded, less what was billed early.
    crate::services::usage::sync(state).await?;
    let mut conn = state.conn().await?;
    let used = folded_usage(&mut conn, sub, plan, start).await?;
    let usage = usage_lines(plan, &used, (start, end))?;
    if sub.cancel_at_period_end {
        return Ok(final_draft(sub, plan, (start, end), usage));
    }
    let NextPeriod { plan: next, period, .. } = next_period(sub, &plans, end)?;
    let quantity = sub.pending_quantity.unwrap_or(sub.quantity);
    let mut draft = renewal_draft(sub, next, quantity, period, end, usage)?;
    // What `insert_draft` adds to a real renewal: the lines carried forward for it.
    draft.lines.extend(invoices::waiting(&mut conn, sub.id, draft.currency).await?);
    Ok(draft)
}

/// The renewal of `sub` at `end`: `quantity` seats of `plan` for `period`, then the `usage` of the period that
/// ended. (Carried prorations join when the draft is inserted.)
pub fn renewal_draft(
    sub: &SubscriptionRow,
    plan: &Plan,
    quantity: i32,
    period: (DateTime<Utc>, DateTime<Utc>),
    end: DateTime<Utc>,
    usage: Vec<Line>,
) -> Result<InvoiceDraft, ServiceError> {
    let fee = Line::period_fee(&plan.name, plan.cycle, &plan.pricing(), quantity, Some(period))
        .map_err(ServiceError::internal)?;
    Ok(InvoiceDraft {
        user_id: sub.user_id,
        subscription_id: Some(sub.id),
        kind: InvoiceKind::Renewal,
        currency: plan.price.currency(),
        lines: fee.into_iter().chain(usage).collect(),
        period: Some(period),
        // Dunning counts its retries from here.
        due_at: Some(end),
    })
}

/// The final invoice of a subscription ending at the end of `period`: the `usage` of that period under `plan`.
fn final_draft(
    sub: &SubscriptionRow,
    plan: &Plan,
    period: (DateTime<Utc>, DateTime<Utc>),
    usage: Vec<Line>,
) -> InvoiceDraft {
    InvoiceDraft {
        user_id: sub.user_id,
        subscription_id: Some(sub.id),
        kind: InvoiceKind::Final,
        currency: plan.price.currency(),
        lines: usage,
        period: Some(period),
        due_at: Some(period.1),
    }
}

/// The `usage` of `sub`'s `period` under `plan` on an invoice of its own (kind `final`), finalized, with its first
/// charge attempt in the outbox: for a period that ends without a renewal to carry its usage (a cancellation or
/// a pause). Nothing when no line charges anything. Returns the invoice's id and the job to send once committed.
pub async fn bill_usage_alone(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    plan: &Plan,
    period: (DateTime<Utc>, DateTime<Utc>),
    usage: Vec<Line>,
    now: DateTime<Utc>,
) -> Result<(Option<InvoiceId>, Option<(i64, NewJob)>), ServiceError> {
    if usage.iter().all(|line| line.amount.is_zero()) {
        return Ok((None, None));
    }
    let draft = final_draft(sub, plan, period, usage);
    let draft_row = invoices::insert_draft(conn, &draft).await?;
    let invoice = invoices::finalize(conn, draft_row.id, now).await?;
    if invoice.amount_due.is_zero() {
        return Ok((Some(invoice.id), None));
    }
    let (row, job) = queue_attempt(conn, invoice.id).await?;
    Ok((Some(invoice.id), Some((row, job))))
}

/// A downgrade scheduled for the period end takes effect: the plan and seats change before the renewal is
/// invoiced, and the billing anchor becomes `anchor` (see [`next_period`]).
async fn apply_scheduled_change(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    next: i32,
    anchor: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, ServiceError> {
    let quantity = sub.pending_quantity.unwrap_or(sub.quantity);
    let changes = SubscriptionChanges {
        plan_id: Some(next),
        quantity: Some(quantity),
        pending_plan_id: Some(None),
        pending_quantity: Some(None),
        billing_anchor: Some(Some(anchor)),
        ..Default::default()
    };
    let data = json!({"scheduled": true, "from_plan_id": sub.plan_id, "to_plan_id": next, "from_quantity": sub.quantity, "to_quantity": quantity, "effective_at": end});
    transition(conn, sub, SubscriptionEvent::ChangePlan, HistoryEntry::PlanChanged, changes, data, now).await
}

/// Step 2: open invoices whose retry time has come get their next attempt queued.
pub async fn retry_due(state: &AppState) -> Result<usize, ServiceError> {
    each_due(state, "retries", async |conn, now| db::invoices::retries_due(conn, now, BATCH).await, retry_one).await
}

async fn retry_one(state: &AppState, id: InvoiceId) -> Result<bool, ServiceError> {
    let now = state.now();
    let job = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(invoice) = db::invoices::find_for_update(conn, id).await? else { return Ok(None) };
            if invoice.status != InvoiceStatus::Open || invoice.next_attempt_at.is_none_or(|at| at > now) {
                return Ok(None);
            }
            let attempt = db::invoices::start_attempt(conn, invoice.id).await?;
            let job = attempt_job(invoice.id, attempt);
            let row = outbox::push(conn, QueueName::SubPaymentInitiation.as_str(), &job, None).await?;
            let subscription = match invoice.subscription_id {
                Some(id) => db::subscriptions::find(conn, id).await?,
                None => None,
            };
            if let Some(sub) = subscription {
                log_event(
                    conn,
                    sub.id,
                    HistoryEntry::PaymentRetry,
                    Some(sub.status),
                    sub.status,
                    json!({"invoice_id": invoice.id, "attempt": attempt}),
                    now,
                )
                .await?;
            }
            Ok(Some((row, job)))
        })
        .await?;
    let Some(job) = job else { return Ok(false) };
    send(state, QueueName::SubPaymentInitiation, vec![job]).await;
    Ok(true)
}

/// Step 3: trials at their end go to `q:sub:trial_payment` (one job per trial, however often it is found).
pub async fn trials_due(state: &AppState) -> Result<usize, ServiceError> {
    let now = state.now();
    let ids = db::subscriptions::trials_due(&mut *state.conn().await?, now, BATCH * 10).await?;
    let queue = queue(state, QueueName::SubTrialPayment);
    let mut queued = 0;
    for id in ids {
        let key = format!("trial-end:{id}");
        let job = NewJob { id: job_id(&key), ..TrialEnded { subscription_id: id }.job(key) }.correlated(id.to_string());
        if queue.enqueue(job, None).await.map_err(|e| ServiceError::Unavailable(e.to_string()))? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Step 4: a pending subscription whose first invoice is unpaid 24 hours after it was issued expires, and the
/// invoice is voided.
pub async fn expire_pending(state: &AppState) -> Result<usize, ServiceError> {
    each_due(
        state,
        "pending expiry",
        async |conn, now| db::invoices::initial_overdue(conn, now, BATCH).await,
        expire_one,
    )
    .await
}

async fn expire_one(state: &AppState, id: InvoiceId) -> Result<bool, ServiceError> {
    let now = state.now();
    state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(invoice) = db::invoices::find_for_update(conn, id).await? else { return Ok(false) };
            if invoice.status != InvoiceStatus::Open || invoice.due_at.is_none_or(|due| due > now) {
                return Ok(false);
            }
            db::invoices::void(conn, invoice.id, now).await?;
            if let Some(sub_id) = invoice.subscription_id
                && let Some(sub) = db::subscriptions::find_for_update(conn, sub_id).await?
                && sub.status == SubscriptionStatus::Pending
            {
                let changes = SubscriptionChanges {
                    ended_at: Some(Some(now)),
                    cancel_reason: Some(Some("unpaid".to_owned())),
                    ..Default::default()
                };
                let data = json!({"invoice_id": invoice.id, "reason": "unpaid"});
                transition(conn, &sub, SubscriptionEvent::Expire, HistoryEntry::Expired, changes, data, now).await?;
            }
            Ok(true)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_stable_per_key() {
        assert_eq!(job_id("trial-end:a"), job_id("trial-end:a"));
        assert_ne!(job_id("trial-end:a"), job_id("trial-end:b"));
        let job = attempt_job(InvoiceId::from(Uuid::nil()), 2);
        assert_eq!(job.idempotency_key, format!("invoice:{}:attempt:2", Uuid::nil()));
        assert_eq!(job.payload["attempt"], 2);
    }
}
