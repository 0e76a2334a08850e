//! The billing cycle over time, driven by the service's clock: renewals at the period end, dunning retries, trial
//! ends, scheduled downgrades and cancellations, and unpaid subscriptions expiring.
//!
//! The scheduler's tick ([`run_due`]) only finds what is due and writes the next step in one transaction each (an
//! invoice, an attempt number, an outbox job); the queue handlers ([`payment_initiation`], [`trial_payment`],
//! [`plan_change`]) talk to the payment service. Every step checks the state it acts on again under a row lock,
//! so a tick or a job that runs twice, or races a copy of itself, changes nothing the second time.
//!
//! A charge's outcome is applied as the payment event it is (`evt_<transaction id>`), whether it arrives in the
//! charge's answer or by webhook: whichever comes first applies, the other is a duplicate.

use billing_domain::dunning::{AfterFailure, after_failure};
use billing_domain::{
    HistoryEntry, InvoiceKind, InvoiceStatus, LineKind, Money, SubscriptionEvent, SubscriptionStatus,
};
use billing_queue::worker::JobError;
use billing_queue::{Envelope, NewJob, Queue, QueueName, outbox};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};
use sha2::Digest;
use uuid::Uuid;

use crate::clients::{ChargeOutcome, ChargeRequest};
use crate::db;
use crate::db::models::{InvoiceRow, SubscriptionChanges, SubscriptionRow};
use crate::error::ServiceError;
use crate::services::invoices::{self, InvoiceDraft, LineDraft};
use crate::services::payments::{self, PaymentEvent};
use crate::services::plans::Plan;
use crate::services::subscriptions::{log_event, transition};
use crate::state::AppState;

/// How many rows one step takes at a time.
const BATCH: i64 = 100;
/// How many batches one tick takes per step at most, so one tick stays short; the next tick continues.
const MAX_BATCHES: usize = 20;

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

/// A failed charge attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    /// False for a hard decline: never retried.
    pub retryable: bool,
    pub transaction_id: Option<Uuid>,
}

/// A stable job id for `key`: the queue stores one job per id, so a tick that finds the same work twice enqueues
/// it once.
fn job_id(key: &str) -> Uuid {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The charge key of attempt `attempt` of an invoice: the same attempt is the same charge, however often sent.
fn attempt_key(invoice: Uuid, attempt: i32) -> String {
    format!("invoice:{invoice}:attempt:{attempt}")
}

fn attempt_job(invoice: Uuid, attempt: i32) -> NewJob {
    let key = attempt_key(invoice, attempt);
    NewJob { id: job_id(&key), ..NewJob::new("charge", key, json!({"invoice_id": invoice, "attempt": attempt})) }
        .correlated(invoice.to_string())
}

fn queue(state: &AppState, name: QueueName) -> Queue {
    Queue::new(state.redis.clone(), name)
}

/// Pushes committed outbox rows now (the relay stays the guarantee).
async fn send(state: &AppState, name: QueueName, jobs: Vec<(i64, NewJob)>) {
    let queue = queue(state, name);
    for (row, job) in jobs {
        outbox::send_now(&state.db, &queue, row, job).await;
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
async fn each_due<F, G>(state: &AppState, step: &str, find: F, one: G) -> Result<usize, ServiceError>
where
    F: AsyncFn(&mut AsyncPgConnection, DateTime<Utc>) -> Result<Vec<Uuid>, billing_infra::DbError>,
    G: AsyncFn(&AppState, Uuid) -> Result<bool, ServiceError>,
{
    let mut done = 0;
    for _ in 0..MAX_BATCHES {
        let now = state.now();
        let ids = find(&mut *state.conn().await?, now).await?;
        let mut progressed = 0;
        for id in &ids {
            match one(state, *id).await {
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
/// scheduled plan, and invoiced for the next period, with the first charge attempt queued.
pub async fn renew_due(state: &AppState) -> Result<usize, ServiceError> {
    each_due(state, "renewals", async |conn, now| db::subscriptions::renewals_due(conn, now, BATCH).await, renew_one)
        .await
}

async fn renew_one(state: &AppState, id: Uuid) -> Result<bool, ServiceError> {
    let now = state.now();
    let plans = state.plans.all(state).await?;
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
            if sub.cancel_at_period_end {
                let changes = SubscriptionChanges {
                    ended_at: Some(Some(end)),
                    cancel_at_period_end: Some(false),
                    ..Default::default()
                };
                let data = json!({"at_period_end": true, "reason": sub.cancel_reason});
                transition(conn, &sub, SubscriptionEvent::Cancel, HistoryEntry::Canceled, changes, data, now).await?;
                return Ok(Some(None));
            }
            let sub = match sub.pending_plan_id {
                Some(next) => apply_scheduled_change(conn, &sub, next, &plans, end, now).await?,
                None => sub,
            };
            let plan = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
            let anchor = sub.billing_anchor.unwrap_or(end);
            let (_, start, next_end) = plan.cycle.period_at(anchor, end);
            let period = if start == end { (end, next_end) } else { (end, plan.cycle.period_end(end, 0)) };
            let total = plan.price.checked_mul(i64::from(sub.quantity)).map_err(ServiceError::internal)?;
            let draft = InvoiceDraft {
                user_id: sub.user_id,
                subscription_id: Some(sub.id),
                kind: InvoiceKind::Renewal,
                currency: plan.price.currency(),
                lines: vec![LineDraft {
                    kind: LineKind::Subscription,
                    description: format!("{} ({}) × {}", plan.name, plan.cycle.as_str(), sub.quantity),
                    quantity: sub.quantity,
                    unit_amount: plan.price,
                    amount: total,
                    period: Some(period),
                }],
                period: Some(period),
                // Dunning counts its retries from here.
                due_at: Some(end),
            };
            let draft_row = invoices::insert_draft(conn, &draft).await?;
            // The total may differ from the plan's price: lines carried forward from earlier prorations join it.
            let invoice = invoices::finalize(conn, draft_row.id, now).await?;
            let due = Money::from_decimal(invoice.amount_due, plan.price.currency()).map_err(ServiceError::internal)?;
            let data = json!({"invoice_id": invoice.id, "period_start": period.0, "period_end": period.1, "amount": due.amount_string(), "currency": due.currency().code()});
            log_event(conn, sub.id, HistoryEntry::RenewalInvoiced, Some(sub.status), sub.status, data.clone(), now).await?;
            if due.is_zero() {
                let paid = db::invoices::mark_paid(conn, invoice.id, rust_decimal::Decimal::ZERO, None, now).await?;
                advance_period(conn, &sub, &paid, data, now).await?;
                return Ok(Some(None));
            }
            let attempt = db::invoices::start_attempt(conn, invoice.id).await?;
            let job = attempt_job(invoice.id, attempt);
            let row = outbox::push(conn, QueueName::SubPaymentInitiation.as_str(), &job, None).await?;
            Ok(Some(Some((row, job))))
        })
        .await?;
    // A tick racing this one waits on the subscription's row lock, then finds the invoice made here.
    let Some(job) = result else { return Ok(false) };
    send(state, QueueName::SubPaymentInitiation, job.into_iter().collect()).await;
    Ok(true)
}

/// A downgrade scheduled for the period end takes effect: the plan and seats change before the renewal is
/// invoiced. A change of cycle restarts the anchor at the period end.
async fn apply_scheduled_change(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    next: i32,
    plans: &[Plan],
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, ServiceError> {
    let old = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
    let new = plans.iter().find(|p| p.id == next).ok_or(ServiceError::PlanNotFound)?;
    let quantity = sub.pending_quantity.unwrap_or(sub.quantity);
    let mut changes = SubscriptionChanges {
        plan_id: Some(next),
        quantity: Some(quantity),
        pending_plan_id: Some(None),
        pending_quantity: Some(None),
        ..Default::default()
    };
    if old.cycle != new.cycle {
        changes.billing_anchor = Some(Some(end));
    }
    let data = json!({"scheduled": true, "from_plan_id": sub.plan_id, "to_plan_id": next, "from_quantity": sub.quantity, "to_quantity": quantity, "effective_at": end});
    transition(conn, sub, SubscriptionEvent::ChangePlan, HistoryEntry::PlanChanged, changes, data, now).await
}

/// A paid renewal invoice moves the subscription into the period it paid for: `renewed`, or `recovered` when
/// dunning was running.
pub async fn advance_period(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    invoice: &InvoiceRow,
    data: Value,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, ServiceError> {
    let changes = SubscriptionChanges {
        current_period_start: Some(invoice.period_start),
        current_period_end: Some(invoice.period_end),
        ..Default::default()
    };
    let (event, name) = if sub.status == SubscriptionStatus::PastDue {
        (SubscriptionEvent::Recover, HistoryEntry::Recovered)
    } else {
        (SubscriptionEvent::Renew, HistoryEntry::Renewed)
    };
    let mut data = data;
    data["period_start"] = json!(invoice.period_start);
    data["period_end"] = json!(invoice.period_end);
    transition(conn, sub, event, name, changes, data, now).await
}

/// A paid conversion invoice turns the trial into the plan it converts to, from the trial's end.
pub async fn convert_trial(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    invoice: &InvoiceRow,
    plans: &[Plan],
    data: Value,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, ServiceError> {
    let trial_plan = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
    let target = trial_plan.converts_to_plan_id.ok_or(ServiceError::PlanNotFound)?;
    let changes = SubscriptionChanges {
        plan_id: Some(target),
        billing_anchor: Some(invoice.period_start),
        current_period_start: Some(invoice.period_start),
        current_period_end: Some(invoice.period_end),
        ..Default::default()
    };
    let mut data = data;
    data["converted_from_trial"] = json!(true);
    data["plan_id"] = json!(target);
    transition(conn, sub, SubscriptionEvent::Activate, HistoryEntry::Activated, changes, data, now).await
}

/// An off-session charge attempt of `invoice` (locked by the caller) failed. A renewal or proration goes into
/// dunning: `past_due` with a retry planned, or `canceled` when the decline was hard or the retries are used up
/// (the invoice then uncollectible). A trial conversion that fails ends the trial (`expired`, invoice void).
pub async fn attempt_failed(
    conn: &mut AsyncPgConnection,
    invoice: InvoiceRow,
    failure: &Failure,
    offsets: &[chrono::Duration],
    now: DateTime<Utc>,
) -> Result<&'static str, ServiceError> {
    // Already handled: paid, given up, or this attempt's failure was applied and a retry is planned.
    if invoice.status != InvoiceStatus::Open || invoice.next_attempt_at.is_some() || invoice.attempt_count == 0 {
        return Ok("stale_attempt");
    }
    let sub = match invoice.subscription_id {
        Some(id) => db::subscriptions::find_for_update(conn, id).await?,
        None => None,
    };
    let data = json!({
        "invoice_id": invoice.id, "transaction_id": failure.transaction_id, "attempt": invoice.attempt_count,
        "decline_code": failure.code, "retryable": failure.retryable,
    });
    match invoice.kind {
        InvoiceKind::TrialConversion => {
            db::invoices::void(conn, invoice.id, now).await?;
            if let Some(sub) = sub.filter(|s| s.status == SubscriptionStatus::Trial) {
                let changes = SubscriptionChanges {
                    ended_at: Some(Some(now)),
                    cancel_reason: Some(Some("trial_conversion_failed".to_owned())),
                    ..Default::default()
                };
                transition(conn, &sub, SubscriptionEvent::Expire, HistoryEntry::Expired, changes, data, now).await?;
            }
            Ok("trial_expired")
        }
        InvoiceKind::Renewal | InvoiceKind::Proration => {
            let attempt = u32::try_from(invoice.attempt_count).unwrap_or(u32::MAX);
            let due = invoice.due_at.unwrap_or(now);
            let sub = sub.filter(|s| matches!(s.status, SubscriptionStatus::Active | SubscriptionStatus::PastDue));
            match after_failure(offsets, due, attempt, failure.retryable) {
                AfterFailure::RetryAt(at) => {
                    db::invoices::schedule_retry(conn, invoice.id, at, &failure.code).await?;
                    if let Some(sub) = sub {
                        let mut data = data;
                        data["next_attempt_at"] = json!(at);
                        let changes = SubscriptionChanges::default();
                        transition(
                            conn,
                            &sub,
                            SubscriptionEvent::PaymentFailed,
                            HistoryEntry::PaymentFailed,
                            changes,
                            data,
                            now,
                        )
                        .await?;
                    }
                    Ok("retry_scheduled")
                }
                AfterFailure::GiveUp(reason) => {
                    db::invoices::mark_uncollectible(conn, invoice.id, &failure.code).await?;
                    if let Some(sub) = sub {
                        let changes = SubscriptionChanges {
                            canceled_at: Some(Some(now)),
                            ended_at: Some(Some(now)),
                            cancel_reason: Some(Some(reason.as_str().to_owned())),
                            cancel_at_period_end: Some(false),
                            ..Default::default()
                        };
                        let mut data = data;
                        data["reason"] = json!(reason.as_str());
                        transition(conn, &sub, SubscriptionEvent::Cancel, HistoryEntry::Canceled, changes, data, now)
                            .await?;
                    }
                    Ok("dunning_ended")
                }
            }
        }
        _ => Ok("payment_failure_recorded"),
    }
}

/// Step 2: open invoices whose retry time has come get their next attempt queued.
pub async fn retry_due(state: &AppState) -> Result<usize, ServiceError> {
    each_due(state, "retries", async |conn, now| db::invoices::retries_due(conn, now, BATCH).await, retry_one).await
}

async fn retry_one(state: &AppState, id: Uuid) -> Result<bool, ServiceError> {
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
        let job = NewJob { id: job_id(&key), ..NewJob::new("trial_end", key, json!({"subscription_id": id})) }
            .correlated(id.to_string());
        if queue.enqueue(job, None).await.map_err(|e| ServiceError::Unavailable(e.to_string()))? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Step 4: a pending subscription whose first invoice is unpaid 24 hours after it was issued expires, and the
/// invoice is voided.
pub async fn expire_pending(state: &AppState) -> Result<usize, ServiceError> {
    each_due(state, "pending", async |conn, now| db::invoices::initial_overdue(conn, now, BATCH).await, expire_one)
        .await
}

async fn expire_one(state: &AppState, id: Uuid) -> Result<bool, ServiceError> {
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

fn payload_uuid(envelope: &Envelope, key: &str) -> Result<Uuid, JobError> {
    envelope.payload[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| JobError::Permanent(format!("the job has no {key}")))
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(e.to_string())
}

/// Applies a charge's answer as the payment event it is; the webhook for the same transaction is then a duplicate.
async fn apply_outcome(state: &AppState, invoice: &InvoiceRow, outcome: &ChargeOutcome) -> Result<(), JobError> {
    use billing_contract::PaymentEventDetail;
    use billing_contract::events::{PaymentFailed, PaymentSucceeded};
    let (transaction_id, detail) = match outcome {
        ChargeOutcome::Succeeded { transaction_id } => (
            *transaction_id,
            PaymentEventDetail::PaymentSucceeded(PaymentSucceeded {
                payment_method_id: None,
                gateway_reference: String::new(),
                off_session: true,
            }),
        ),
        ChargeOutcome::Declined { transaction_id, decline_code, retryable } => (
            *transaction_id,
            PaymentEventDetail::PaymentFailed(PaymentFailed {
                decline_code: decline_code.clone(),
                retryable: Some(*retryable),
                off_session: true,
            }),
        ),
        _ => return Ok(()),
    };
    let event = PaymentEvent {
        event_id: format!("evt_{transaction_id}"),
        transaction_id,
        subscription_id: invoice.subscription_id,
        invoice_id: invoice.id,
        amount: invoice.currency.render(invoice.amount_due),
        currency: invoice.currency.to_string(),
        occurred_at: state.now(),
        detail,
    };
    // Recorded like the webhook that will follow (and be a duplicate), marked as learnt from the charge's answer.
    let mut raw = serde_json::to_value(&event).map_err(|e| JobError::Permanent(e.to_string()))?;
    raw["source"] = json!("charge_answer");
    match payments::apply(state, event, raw).await.map_err(retry)? {
        Ok(applied) => {
            tracing::debug!(invoice_id = %invoice.id, ?applied, "charge outcome applied");
            Ok(())
        }
        Err(not_applicable) => Err(JobError::Permanent(format!("the charge outcome cannot apply: {not_applicable}"))),
    }
}

/// A failure the payment service decided without a transaction (no saved payment method), applied to the attempt
/// the job was for.
async fn attempt_failed_without_charge(
    state: &AppState,
    invoice: Uuid,
    attempt: i32,
    code: &str,
) -> Result<(), JobError> {
    let (offsets, now) = (state.settings.billing.dunning_offsets.clone(), state.now());
    let failure = Failure { code: code.to_owned(), retryable: true, transaction_id: None };
    state
        .conn()
        .await
        .map_err(retry)?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(row) = db::invoices::find_for_update(conn, invoice).await? else { return Ok(()) };
            if row.attempt_count == attempt {
                attempt_failed(conn, row, &failure, &offsets, now).await?;
            }
            Ok(())
        })
        .await
        .map_err(retry)
}

/// `q:sub:payment_initiation`: charges attempt `attempt` of an invoice to the user's default payment method.
pub async fn payment_initiation(state: &AppState, envelope: Envelope) -> Result<(), JobError> {
    let invoice_id = payload_uuid(&envelope, "invoice_id")?;
    let attempt = envelope.payload["attempt"]
        .as_i64()
        .and_then(|a| i32::try_from(a).ok())
        .ok_or_else(|| JobError::Permanent("the job has no attempt".to_owned()))?;
    let request_id = envelope.correlation_id.unwrap_or_else(|| envelope.id.to_string());
    charge_attempt(state, invoice_id, attempt, &request_id).await
}

/// Charges attempt `attempt` of an invoice under its [`attempt_key`], so a redelivered job is the same charge,
/// never a second one, and applies the outcome.
async fn charge_attempt(state: &AppState, invoice_id: Uuid, attempt: i32, request_id: &str) -> Result<(), JobError> {
    let Some(invoice) =
        db::invoices::find(&mut *state.conn().await.map_err(retry)?, invoice_id).await.map_err(retry)?
    else {
        return Err(JobError::Permanent(format!("invoice {invoice_id} does not exist")));
    };
    // Paid, voided or given up meanwhile, or a later attempt exists: this one has nothing left to do.
    if invoice.status != InvoiceStatus::Open || invoice.attempt_count != attempt || invoice.next_attempt_at.is_some() {
        return Ok(());
    }
    let currency = invoice.currency;
    let amount = Money::from_decimal(invoice.amount_due, currency).map_err(|e| JobError::Permanent(e.to_string()))?;
    let request = ChargeRequest {
        invoice_id,
        user_id: invoice.user_id,
        amount: amount.amount_string(),
        currency: currency.code().to_owned(),
        payment_method_id: None,
        idempotency_key: attempt_key(invoice_id, attempt),
    };
    let outcome = state.payments.charge(&request, request_id).await.map_err(retry)?;
    match &outcome {
        ChargeOutcome::Succeeded { .. } | ChargeOutcome::Declined { .. } => {
            apply_outcome(state, &invoice, &outcome).await
        }
        ChargeOutcome::NoPaymentMethod => {
            attempt_failed_without_charge(state, invoice_id, attempt, "no_payment_method").await
        }
        ChargeOutcome::NotPayable(why) => {
            // Paid by the customer meanwhile (done), or their own payment is in flight (try again later).
            let still_open = db::invoices::find(&mut *state.conn().await.map_err(retry)?, invoice_id)
                .await
                .map_err(retry)?
                .is_some_and(|i| i.status == InvoiceStatus::Open);
            if still_open { Err(JobError::Retry(format!("the invoice is busy: {why}"))) } else { Ok(()) }
        }
        ChargeOutcome::Rejected(why) => {
            Err(JobError::Permanent(format!("the payment service refused the charge: {why}")))
        }
    }
}

/// `q:sub:trial_payment`: a trial at its end converts to the plan it converts to when the user has a saved
/// payment method (a conversion invoice from the trial's end, charged now), and expires otherwise.
pub async fn trial_payment(state: &AppState, envelope: Envelope) -> Result<(), JobError> {
    let id = payload_uuid(&envelope, "subscription_id")?;
    let now = state.now();
    let Some(sub) = db::subscriptions::find(&mut *state.conn().await.map_err(retry)?, id).await.map_err(retry)? else {
        return Err(JobError::Permanent(format!("subscription {id} does not exist")));
    };
    let Some(trial_end) = sub.trial_end.filter(|end| *end <= now) else { return Ok(()) };
    if sub.status != SubscriptionStatus::Trial {
        return Ok(());
    }
    let plans = state.plans.all(state).await.map_err(retry)?;
    let target = plans
        .iter()
        .find(|p| p.id == sub.plan_id)
        .and_then(|p| p.converts_to_plan_id)
        .and_then(|t| plans.iter().find(|p| p.id == t))
        .cloned();
    let request_id = envelope.correlation_id.clone().unwrap_or_else(|| envelope.id.to_string());
    let has_method = match &target {
        Some(_) => state.payments.has_payment_method(sub.user_id, &request_id).await.map_err(retry)?,
        None => false,
    };
    let Some(plan) = target.filter(|_| has_method) else {
        let reason = if has_method { "no_conversion_plan" } else { "no_payment_method" };
        return expire_trial(state, id, reason).await;
    };
    let period = (trial_end, plan.cycle.period_end(trial_end, 0));
    let total = plan.price;
    let invoice = state
        .conn()
        .await
        .map_err(retry)?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(sub) = db::subscriptions::find_for_update(conn, id).await? else { return Ok(None) };
            if sub.status != SubscriptionStatus::Trial {
                return Ok(None);
            }
            if let Some(existing) = db::invoices::for_period(conn, id, InvoiceKind::TrialConversion, trial_end).await? {
                return Ok(Some(existing));
            }
            let draft = InvoiceDraft {
                user_id: sub.user_id,
                subscription_id: Some(sub.id),
                kind: InvoiceKind::TrialConversion,
                currency: total.currency(),
                lines: vec![LineDraft {
                    kind: LineKind::Subscription,
                    description: format!("{} ({}) × 1", plan.name, plan.cycle.as_str()),
                    quantity: 1,
                    unit_amount: total,
                    amount: total,
                    period: Some(period),
                }],
                period: Some(period),
                due_at: Some(trial_end),
            };
            let draft_row = invoices::insert_draft(conn, &draft).await?;
            let invoice = invoices::finalize(conn, draft_row.id, now).await?;
            db::invoices::start_attempt(conn, invoice.id).await?;
            log_event(
                conn,
                sub.id,
                HistoryEntry::ConversionInvoiced,
                Some(sub.status),
                sub.status,
                json!({"invoice_id": invoice.id, "plan_id": plan.id}),
                now,
            )
            .await?;
            Ok(db::invoices::find(conn, invoice.id).await?)
        })
        .await
        .map_err(retry)?;
    match invoice {
        Some(invoice) if invoice.status == InvoiceStatus::Open => {
            charge_attempt(state, invoice.id, invoice.attempt_count, &request_id).await
        }
        _ => Ok(()),
    }
}

async fn expire_trial(state: &AppState, id: Uuid, reason: &'static str) -> Result<(), JobError> {
    let now = state.now();
    state
        .conn()
        .await
        .map_err(retry)?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(sub) = db::subscriptions::find_for_update(conn, id).await? else { return Ok(()) };
            if sub.status != SubscriptionStatus::Trial {
                return Ok(());
            }
            let changes = SubscriptionChanges {
                ended_at: Some(Some(now)),
                cancel_reason: Some(Some(reason.to_owned())),
                ..Default::default()
            };
            transition(
                conn,
                &sub,
                SubscriptionEvent::Expire,
                HistoryEntry::Expired,
                changes,
                json!({"reason": reason}),
                now,
            )
            .await?;
            Ok(())
        })
        .await
        .map_err(retry)
}

/// `q:sub:plan_change`: an upgrade's proration invoice gets its first charge attempt (through
/// `q:sub:payment_initiation`); one with nothing to pay is settled at once.
pub async fn plan_change(state: &AppState, envelope: Envelope) -> Result<(), JobError> {
    let id = payload_uuid(&envelope, "invoice_id")?;
    let now = state.now();
    let job = state
        .conn()
        .await
        .map_err(retry)?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(invoice) = db::invoices::find_for_update(conn, id).await? else { return Ok(None) };
            if invoice.status != InvoiceStatus::Open || invoice.attempt_count > 0 {
                return Ok(None);
            }
            if invoice.amount_due.is_zero() {
                db::invoices::mark_paid(conn, invoice.id, rust_decimal::Decimal::ZERO, None, now).await?;
                return Ok(None);
            }
            let attempt = db::invoices::start_attempt(conn, invoice.id).await?;
            let job = attempt_job(invoice.id, attempt);
            let row = outbox::push(conn, QueueName::SubPaymentInitiation.as_str(), &job, None).await?;
            Ok(Some((row, job)))
        })
        .await
        .map_err(retry)?;
    if let Some(job) = job {
        send(state, QueueName::SubPaymentInitiation, vec![job]).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_stable_per_key() {
        assert_eq!(job_id("trial-end:a"), job_id("trial-end:a"));
        assert_ne!(job_id("trial-end:a"), job_id("trial-end:b"));
        let job = attempt_job(Uuid::nil(), 2);
        assert_eq!(job.idempotency_key, format!("invoice:{}:attempt:2", Uuid::nil()));
        assert_eq!(job.payload["attempt"], 2);
    }
}
