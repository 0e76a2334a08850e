//! Pause and resume. A paused subscription is invoiced and charged nothing and its features refuse usage; it
//! stays the user's one paid subscription. Pausing now gives up the rest of the paid period (nothing is refunded,
//! as with a downgrade) and bills the usage counted so far; pausing at the period end uses what was paid, and the
//! period's usage is billed then. Resuming starts a new period at once, invoiced and charged like a renewal (a
//! failed charge starts dunning); a change scheduled for the period end takes effect then.

use billing_domain::{HistoryEntry, Money, SubscriptionEvent, SubscriptionStatus};
use billing_domain::{InvoiceId, SubscriptionId};
use billing_http::AuthUser;
use billing_queue::{NewJob, QueueName};
use diesel_async::AsyncConnection;
use serde_json::json;

use crate::db;
use crate::db::models::{SubscriptionChanges, SubscriptionRow};
use crate::error::ServiceError;
use crate::services::billing::{self, bill_usage_alone, folded_usage, renewal_draft, usage_lines};
use crate::services::invoices;
use crate::services::subscriptions::{get, transition};
use crate::state::AppState;

/// When a pause takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseAt {
    Now,
    PeriodEnd,
}

/// The subscription after a pause or a resume, and the invoice the step issued (usage billed by a pause now, or
/// the new period of a resume).
#[derive(Debug, Clone)]
pub struct Paused {
    pub subscription: SubscriptionRow,
    pub invoice_id: Option<InvoiceId>,
}

fn may_pause(row: &SubscriptionRow, now: chrono::DateTime<chrono::Utc>) -> Result<(), ServiceError> {
    if row.status != SubscriptionStatus::Active {
        return Err(ServiceError::InvalidState(format!(
            "a {} subscription cannot be paused: only an active one can",
            row.status
        )));
    }
    if row.cancel_at_period_end {
        return Err(ServiceError::InvalidState(
            "the subscription ends at its period end: reactivate it before pausing it".to_owned(),
        ));
    }
    if row.current_period_end.is_none_or(|end| end <= now) {
        return Err(ServiceError::InvalidState("the period has ended and its renewal is under way".to_owned()));
    }
    Ok(())
}

/// `row`, locked for the rest of the transaction, unless another change moved it on since it was read.
async fn lock_unchanged(
    conn: &mut diesel_async::AsyncPgConnection,
    row: &SubscriptionRow,
) -> Result<SubscriptionRow, ServiceError> {
    let sub = db::subscriptions::find_for_update(conn, row.id).await?.ok_or(ServiceError::SubscriptionNotFound)?;
    if sub.version != row.version {
        return Err(ServiceError::ConcurrentUpdate);
    }
    Ok(sub)
}

/// Pauses an active subscription now, or schedules the pause for its period end (again: no change).
pub async fn pause(
    state: &AppState,
    caller: AuthUser,
    id: SubscriptionId,
    at: PauseAt,
) -> Result<Paused, ServiceError> {
    let row = get(state, caller, id).await?;
    let now = state.now();
    may_pause(&row, now)?;
    if at == PauseAt::PeriodEnd {
        if row.pause_at.is_some() {
            return Ok(Paused { subscription: row, invoice_id: None });
        }
        let end = row.current_period_end;
        let subscription = state
            .conn()
            .await?
            .transaction::<_, ServiceError, _>(async move |conn| {
                let changes = SubscriptionChanges { pause_at: Some(end), ..Default::default() };
                let data = json!({"effective_at": end});
                let event = SubscriptionEvent::SchedulePause;
                transition(conn, &row, event, HistoryEntry::PauseScheduled, changes, data, now).await
            })
            .await?;
        return Ok(Paused { subscription, invoice_id: None });
    }
    // Usage is billed from PostgreSQL: what Redis accepted until now is folded first.
    crate::services::usage::sync(state).await?;
    let plans = state.plans.all(&state.infra.db).await?;
    let (subscription, invoice_id, job) = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let sub = lock_unchanged(conn, &row).await?;
            let plan = plans.iter().find(|p| p.id == sub.plan_id).ok_or(ServiceError::PlanNotFound)?;
            let start = sub.current_period_start.unwrap_or(now);
            let used = folded_usage(conn, &sub, plan, start).await?;
            let usage = usage_lines(plan, &used, (start, now))?;
            let (invoice_id, job) = bill_usage_alone(conn, &sub, plan, (start, now), usage, now).await?;
            let changes =
                SubscriptionChanges { pause_at: Some(None), paused_at: Some(Some(now)), ..Default::default() };
            let data = json!({"at_period_end": false, "usage_invoice_id": invoice_id});
            let paused =
                transition(conn, &sub, SubscriptionEvent::Pause, HistoryEntry::Paused, changes, data, now).await?;
            Ok((paused, invoice_id, job))
        })
        .await?;
    billing::send(state, QueueName::SubPaymentInitiation, job.into_iter().collect()).await;
    Ok(Paused { subscription, invoice_id })
}

/// Resumes a paused subscription (a new period from now, invoiced and charged like a renewal), or undoes a pause
/// scheduled for the period end.
pub async fn resume(state: &AppState, caller: AuthUser, id: SubscriptionId) -> Result<Paused, ServiceError> {
    let row = get(state, caller, id).await?;
    let now = state.now();
    if row.status == SubscriptionStatus::Active && row.pause_at.is_some() {
        let subscription = state
            .conn()
            .await?
            .transaction::<_, ServiceError, _>(async move |conn| {
                let changes = SubscriptionChanges { pause_at: Some(None), ..Default::default() };
                let event = SubscriptionEvent::SchedulePause;
                transition(conn, &row, event, HistoryEntry::PauseUnscheduled, changes, json!({}), now).await
            })
            .await?;
        return Ok(Paused { subscription, invoice_id: None });
    }
    if row.status != SubscriptionStatus::Paused {
        return Err(ServiceError::InvalidState(format!(
            "a {} subscription cannot be resumed: only a paused one (or one with a pause scheduled) can",
            row.status
        )));
    }
    let plans = state.plans.all(&state.infra.db).await?;
    let (subscription, invoice_id, job) = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let sub = lock_unchanged(conn, &row).await?;
            let plan_id = sub.pending_plan_id.unwrap_or(sub.plan_id);
            let plan = plans.iter().find(|p| p.id == plan_id).ok_or(ServiceError::PlanNotFound)?;
            let quantity = sub.pending_quantity.unwrap_or(sub.quantity);
            let period = (now, plan.cycle.period_end(now, 0));
            let draft = renewal_draft(&sub, plan, quantity, period, now, Vec::new())?;
            let draft_row = invoices::insert_draft(conn, &draft).await?;
            let invoice = invoices::finalize(conn, draft_row.id, now).await?;
            let changes = SubscriptionChanges {
                plan_id: Some(plan.id),
                quantity: Some(quantity),
                pending_plan_id: Some(None),
                pending_quantity: Some(None),
                billing_anchor: Some(Some(now)),
                current_period_start: Some(Some(now)),
                current_period_end: Some(Some(period.1)),
                paused_at: Some(None),
                ..Default::default()
            };
            let due = Money::from_decimal(invoice.amount_due, plan.price.currency()).map_err(ServiceError::internal)?;
            let data = json!({
                "invoice_id": invoice.id, "period_start": period.0, "period_end": period.1,
                "plan_id": plan.id, "quantity": quantity, "paused_at": sub.paused_at,
                "amount": due.amount_string(), "currency": due.currency().code(),
            });
            let resumed =
                transition(conn, &sub, SubscriptionEvent::Resume, HistoryEntry::Resumed, changes, data, now).await?;
            if due.is_zero() {
                db::invoices::mark_paid(conn, invoice.id, rust_decimal::Decimal::ZERO, None, None, now).await?;
                return Ok((resumed, Some(invoice.id), None::<(i64, NewJob)>));
            }
            let (outbox_row, job) = billing::queue_attempt(conn, invoice.id).await?;
            Ok((resumed, Some(invoice.id), Some((outbox_row, job))))
        })
        .await?;
    billing::send(state, QueueName::SubPaymentInitiation, job.into_iter().collect()).await;
    Ok(Paused { subscription, invoice_id })
}
