//! Settlement: payment outcomes applied to invoices and subscriptions, exactly once per event, whoever brings them
//! (the payment service's signed webhook, or the charge job with the answer to its own charge). A paid invoice
//! activates, renews, recovers or converts its subscription; a failed off-session attempt enters dunning; a refund
//! gets its credit note.

use billing_contract::PaymentEventDetail;
use billing_contract::events::{PaymentFailed, PaymentSucceeded, RefundSucceeded};
use billing_domain::AmountText;
use billing_domain::TransactionId;
use billing_domain::dunning::{AfterFailure, after_failure};
use billing_domain::{
    Currency, HistoryEntry, InvoiceKind, InvoiceStatus, Money, SubscriptionEvent, SubscriptionStatus,
};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db;
use crate::db::models::{InvoiceRow, SubscriptionChanges, SubscriptionRow};
use crate::error::ServiceError;
use crate::services::plans::Plan;
use crate::services::subscriptions::{end_now, log_event, transition};
use crate::state::AppState;

pub use billing_contract::PaymentEvent;

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event id was seen before: nothing changed.
    Duplicate,
    /// Applied now, with what happened.
    Processed(&'static str),
}

/// An event that can never apply (the sender must not retry it).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct NotApplicable {
    pub reason: String,
    pub unapplied: Unapplied,
}

/// What the sender should do about a payment that cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unapplied {
    /// Nothing: the event is wrong (unknown invoice, another subscription's …).
    Ignore,
    /// The money was taken for an invoice that can no longer take it (voided or paid by another payment while the
    /// charge was in flight): it must go back to the customer.
    Refund,
}

impl NotApplicable {
    fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), unapplied: Unapplied::Ignore }
    }

    fn refund(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), unapplied: Unapplied::Refund }
    }
}

/// Why the transaction applying an event ended without committing.
enum Abort {
    Service(ServiceError),
    NotApplicable(NotApplicable),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Self::Service(e.into())
    }
}

impl From<ServiceError> for Abort {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// Applies `event` once: the event id is recorded in the same transaction as its effect, so a replay finds it
/// and changes nothing, and an event that cannot apply leaves no trace.
pub async fn apply(
    state: &AppState,
    event: PaymentEvent,
    raw: Value,
) -> Result<Result<Applied, NotApplicable>, ServiceError> {
    let now = state.now();
    let plans = state.plans.all(&state.infra.db).await?;
    let offsets = state.infra.settings.billing.dunning_offsets.clone();
    let mut conn = state.conn().await?;
    let result = conn
        .transaction::<_, Abort, _>(async move |conn| {
            if !db::subscriptions::record_inbound_webhook(conn, &event.event_id, event.event_type(), "processed", &raw)
                .await
                .map_err(ServiceError::from)?
            {
                return Ok(Applied::Duplicate);
            }
            let effect = match &event.detail {
                PaymentEventDetail::PaymentSucceeded(paid) => succeeded(conn, &event, paid, &plans, now).await?,
                PaymentEventDetail::PaymentFailed(failure) => failed(conn, &event, failure, &offsets, now).await?,
                PaymentEventDetail::RefundSucceeded(refund) => refunded(conn, &event, refund, now).await?,
                PaymentEventDetail::Unknown { event_type, .. } => {
                    Err(NotApplicable::new(format!("unknown event type {event_type:?} or unreadable metadata")))
                }
            };
            effect.map(Applied::Processed).map_err(Abort::NotApplicable)
        })
        .await;
    match result {
        Ok(applied) => Ok(Ok(applied)),
        Err(Abort::NotApplicable(reason)) => Ok(Err(reason)),
        Err(Abort::Service(err)) => Err(err),
    }
}

/// `refund.succeeded`: a refund of the payment that paid an invoice issues a credit note against it (the invoice
/// itself never changes once paid), and, when the merchant asked for it (`metadata.cancel_subscription`), ends the
/// subscription at once. A refund of a payment that paid nothing here (one that arrived for an invoice no longer
/// open) is only noted.
async fn refunded(
    conn: &mut AsyncPgConnection,
    event: &PaymentEvent,
    refund: &RefundSucceeded,
    now: DateTime<Utc>,
) -> Result<Result<&'static str, NotApplicable>, ServiceError> {
    let outcome = credit_refund(conn, event, refund, now).await?;
    if outcome.is_ok() && refund.cancel_subscription {
        cancel_for_refund(conn, event, refund, now).await?;
    }
    Ok(outcome)
}

/// Ends the refunded payment's subscription now, unless it has already ended.
async fn cancel_for_refund(
    conn: &mut AsyncPgConnection,
    event: &PaymentEvent,
    refund: &RefundSucceeded,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let subscription = match event.subscription_id {
        Some(id) => Some(id),
        None => db::invoices::find(conn, event.invoice_id).await?.and_then(|invoice| invoice.subscription_id),
    };
    let Some(row) = (match subscription {
        Some(id) => db::subscriptions::find_for_update(conn, id).await?,
        None => None,
    }) else {
        return Ok(());
    };
    let ended = matches!(row.status, SubscriptionStatus::Canceled | SubscriptionStatus::Expired);
    if !ended {
        let data = json!({"immediately": true, "refund_id": refund.refund_id});
        end_now(conn, &row, "refunded", data, now).await?;
    }
    Ok(())
}

/// The credit note of a refund (see [`refunded`]).
async fn credit_refund(
    conn: &mut AsyncPgConnection,
    event: &PaymentEvent,
    refund: &RefundSucceeded,
    now: DateTime<Utc>,
) -> Result<Result<&'static str, NotApplicable>, ServiceError> {
    let Some(refund_id) = refund.refund_id else {
        return Ok(Err(NotApplicable::new("metadata.refund_id is missing".to_owned())));
    };
    let Some(invoice) = db::invoices::find_for_update(conn, event.invoice_id).await? else {
        return Ok(Err(NotApplicable::new("unknown invoice".to_owned())));
    };
    if invoice.status != InvoiceStatus::Paid || invoice.paid_by_transaction_id != Some(event.transaction_id) {
        return Ok(Ok("refund_noted"));
    }
    let Some(currency) = Currency::from_code(&event.currency).filter(|c| *c == invoice.currency) else {
        return Ok(Err(NotApplicable::new("the refund's currency is not the invoice's".to_owned())));
    };
    let Ok(amount) = AmountText(event.amount.clone()).to_money(currency) else {
        return Ok(Err(NotApplicable::new("the amount has more digits than the currency".to_owned())));
    };
    let notes = db::invoices::credit_notes(conn, &[invoice.id]).await?;
    if notes.iter().any(|n| n.refund_id == refund_id) {
        return Ok(Ok("credit_note_exists"));
    }
    let credited: rust_decimal::Decimal = notes.iter().map(|n| n.amount).sum();
    if amount.is_negative() || amount.is_zero() || credited + amount.to_decimal() > invoice.amount_paid {
        return Ok(Err(NotApplicable::new("the refund passes what the invoice was paid".to_owned())));
    }
    let sequence = db::invoices::next_credit_note_number(conn, billing_domain::invoice::sequence_month(now)).await?;
    let note = db::models::CreditNoteRow {
        id: Uuid::now_v7(),
        number: billing_domain::invoice::credit_note_number(now, u32::try_from(sequence).unwrap_or(0)),
        invoice_id: invoice.id,
        refund_id,
        transaction_id: event.transaction_id,
        amount: amount.to_decimal(),
        currency,
        reason: refund.reason.clone(),
        created_at: now,
    };
    db::invoices::insert_credit_note(conn, &note).await?;
    Ok(Ok("credit_note_issued"))
}

/// `payment.succeeded`: the invoice is paid; a pending subscription becomes active with its first period, and a
/// trial it replaces ends.
async fn succeeded(
    conn: &mut AsyncPgConnection,
    event: &PaymentEvent,
    paid_with: &PaymentSucceeded,
    plans: &[crate::services::plans::Plan],
    now: DateTime<Utc>,
) -> Result<Result<&'static str, NotApplicable>, ServiceError> {
    let Some(invoice) = db::invoices::find_for_update(conn, event.invoice_id).await? else {
        return Ok(Err(NotApplicable::new("unknown invoice".to_owned())));
    };
    if event.subscription_id.is_some() && invoice.subscription_id != event.subscription_id {
        return Ok(Err(NotApplicable::new("the invoice belongs to another subscription".to_owned())));
    }
    if invoice.status == InvoiceStatus::Paid {
        return Ok(if invoice.paid_by_transaction_id == Some(event.transaction_id) {
            Ok("already_paid")
        } else {
            Err(NotApplicable::refund("the invoice was paid by another transaction"))
        });
    }
    if invoice.status != InvoiceStatus::Open {
        tracing::warn!(invoice_id = %invoice.id, status = %invoice.status, "a payment arrived for an invoice that is not open; it is to be refunded");
        return Ok(Err(NotApplicable::refund(format!("the invoice is {}", invoice.status))));
    }
    let currency = invoice.currency;
    let due = Money::from_decimal(invoice.amount_due, currency).map_err(ServiceError::internal)?;
    let paid =
        (event.currency == currency.code()).then(|| AmountText(event.amount.clone()).to_money(currency).ok()).flatten();
    if paid != Some(due) {
        return Ok(Err(NotApplicable::new("the amount or currency differs from what the invoice asks".to_owned())));
    }
    // The subscription is locked once, after its invoice (the order every path takes).
    let sub = match invoice.subscription_id {
        Some(id) => db::subscriptions::find_for_update(conn, id).await?,
        None => None,
    };
    // A first invoice pays for the period its payment starts (the one `activate` sets below): it and its lines say
    // so, the lines dated before the invoice is paid and frozen.
    let mut period = None;
    if invoice.kind == InvoiceKind::Initial
        && invoice.period_start.is_none()
        && let Some(sub) = &sub
        && sub.status == SubscriptionStatus::Pending
        && let Some(plan) = plans.iter().find(|p| p.id == sub.plan_id)
    {
        let (start, end) = (now, plan.cycle.period_end(now, 0));
        db::invoices::date_lines(conn, invoice.id, start, end).await?;
        period = Some((start, end));
    }
    db::invoices::mark_paid(conn, invoice.id, due.to_decimal(), Some(event.transaction_id), period, now).await?;
    let Some(sub) = sub else { return Ok(Ok("invoice_paid")) };
    // Not a transition (the version stays), so `sub` is still the row the transition below checks against.
    if let Some(pm) = &paid_with.payment_method_id {
        db::subscriptions::set_payment_method(conn, sub.id, pm).await?;
    }
    let data = json!({"invoice_id": invoice.id, "transaction_id": event.transaction_id, "kind": invoice.kind});
    let status = Some(sub.status);
    let outcome = match (invoice.kind, status) {
        (InvoiceKind::Initial, Some(SubscriptionStatus::Pending)) => activate(conn, &sub, plans, now, event).await?,
        (InvoiceKind::Renewal, Some(SubscriptionStatus::Active | SubscriptionStatus::PastDue))
            if invoice.period_start.is_some() && invoice.period_start == sub.current_period_end =>
        {
            advance_period(conn, &sub, &invoice, data, now).await?;
            "subscription_renewed"
        }
        // An upgrade's proration, or the invoice of the period a resume started, paid during dunning.
        (InvoiceKind::Proration, Some(SubscriptionStatus::PastDue))
        | (InvoiceKind::Renewal, Some(SubscriptionStatus::PastDue))
            if invoice.kind == InvoiceKind::Proration || invoice.period_start == sub.current_period_start =>
        {
            transition(
                conn,
                &sub,
                SubscriptionEvent::Recover,
                HistoryEntry::Recovered,
                SubscriptionChanges::default(),
                data,
                now,
            )
            .await?;
            "subscription_recovered"
        }
        (InvoiceKind::TrialConversion, Some(SubscriptionStatus::Trial)) => {
            convert_trial(conn, &sub, &invoice, plans, data, now).await?;
            "trial_converted"
        }
        _ => {
            log_event(conn, sub.id, HistoryEntry::InvoicePaid, Some(sub.status), sub.status, data, now).await?;
            "invoice_paid"
        }
    };
    Ok(Ok(outcome))
}

/// A pending subscription's first payment: active with its first period; a trial it replaces ends.
async fn activate(
    conn: &mut AsyncPgConnection,
    sub: &crate::db::models::SubscriptionRow,
    plans: &[crate::services::plans::Plan],
    now: DateTime<Utc>,
    event: &PaymentEvent,
) -> Result<&'static str, ServiceError> {
    // A trial being replaced ends first: a user never has a trial and an active subscription at once.
    for other in db::subscriptions::current_for_user(conn, sub.user_id).await? {
        if other.status == SubscriptionStatus::Trial {
            let changes = SubscriptionChanges {
                ended_at: Some(Some(now)),
                canceled_at: Some(Some(now)),
                cancel_reason: Some(Some("replaced_by_paid_subscription".to_owned())),
                ..Default::default()
            };
            transition(
                conn,
                &other,
                SubscriptionEvent::ReplaceTrial,
                HistoryEntry::TrialReplaced,
                changes,
                json!({"replaced_by": sub.id}),
                now,
            )
            .await?;
        }
    }
    let plan = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
    let end = plan.cycle.period_end(now, 0);
    let changes = SubscriptionChanges {
        billing_anchor: Some(Some(now)),
        current_period_start: Some(Some(now)),
        current_period_end: Some(Some(end)),
        ..Default::default()
    };
    let data = json!({"invoice_id": event.invoice_id, "transaction_id": event.transaction_id, "period_end": end});
    transition(conn, sub, SubscriptionEvent::Activate, HistoryEntry::Activated, changes, data, now).await?;
    Ok("subscription_activated")
}

/// `payment.failed`. An off-session attempt (the billing cycle's own charge) moves dunning on; a customer's own
/// failed try is only recorded, and the invoice stays as it was.
async fn failed(
    conn: &mut AsyncPgConnection,
    event: &PaymentEvent,
    failure: &PaymentFailed,
    offsets: &[chrono::Duration],
    now: DateTime<Utc>,
) -> Result<Result<&'static str, NotApplicable>, ServiceError> {
    let Some(invoice) = db::invoices::find_for_update(conn, event.invoice_id).await? else {
        return Ok(Err(NotApplicable::new("unknown invoice".to_owned())));
    };
    let code = failure.decline_code.clone();
    if failure.off_session {
        let retryable = billing_domain::dunning::is_retryable(failure.retryable, &code);
        let failure = Failure { code, retryable, transaction_id: Some(event.transaction_id) };
        return Ok(Ok(attempt_failed(conn, invoice, &failure, offsets, now).await?));
    }
    if let Some(sub) = invoice.subscription_id
        && let Some(row) = db::subscriptions::find(conn, sub).await?
    {
        let data = json!({"invoice_id": invoice.id, "transaction_id": event.transaction_id, "decline_code": code, "off_session": false});
        log_event(conn, row.id, HistoryEntry::PaymentFailed, Some(row.status), row.status, data, now).await?;
    }
    Ok(Ok("payment_failure_recorded"))
}

/// A failed charge attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    /// False for a hard decline: never retried.
    pub retryable: bool,
    pub transaction_id: Option<TransactionId>,
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
        InvoiceKind::Renewal | InvoiceKind::Proration | InvoiceKind::Final => {
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
