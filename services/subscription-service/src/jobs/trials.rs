//! `q:sub:trial_payment`: a trial at its end converts to the plan it converts to when the user has a saved
//! payment method (a conversion invoice from the trial's end, charged now), and expires otherwise.

use billing_domain::SubscriptionId;
use billing_domain::invoice::Line;
use billing_domain::{HistoryEntry, InvoiceKind, InvoiceStatus, SubscriptionEvent, SubscriptionStatus};
use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job};
use diesel_async::AsyncConnection;
use serde_json::json;

use super::charges::charge_attempt;
use super::{request_id, retry};
use crate::db;
use crate::db::models::SubscriptionChanges;
use crate::error::ServiceError;
use crate::services::billing::TrialEnded;
use crate::services::invoices::{self, InvoiceDraft};
use crate::services::subscriptions::{log_event, transition};
use crate::state::AppState;

/// `q:sub:trial_payment`: a trial at its end converts to the plan it converts to when the user has a saved
/// payment method (a conversion invoice from the trial's end, charged now), and expires otherwise.
#[derive(Debug)]
pub struct TrialPayment;

impl Job for TrialPayment {
    type Payload = TrialEnded;
    type State = AppState;

    async fn run(state: &AppState, job: TrialEnded, envelope: &Envelope) -> Result<(), JobError> {
        convert_or_expire(state, job.subscription_id, &request_id(envelope)).await
    }
}

async fn convert_or_expire(state: &AppState, id: SubscriptionId, request_id: &str) -> Result<(), JobError> {
    let now = state.now();
    let Some(sub) = db::subscriptions::find(&mut *state.conn().await.map_err(retry)?, id).await.map_err(retry)? else {
        return Err(JobError::Permanent(format!("subscription {id} does not exist")));
    };
    let Some(trial_end) = sub.trial_end.filter(|end| *end <= now) else { return Ok(()) };
    if sub.status != SubscriptionStatus::Trial {
        return Ok(());
    }
    let plans = state.plans.all(&state.infra.db).await.map_err(retry)?;
    let target = plans
        .iter()
        .find(|p| p.id == sub.plan_id)
        .and_then(|p| p.converts_to_plan_id)
        .and_then(|t| plans.iter().find(|p| p.id == t))
        .cloned();
    let has_method = match &target {
        Some(_) => state.payments.has_payment_method(sub.user_id, request_id).await.map_err(retry)?,
        None => false,
    };
    let Some(plan) = target.filter(|_| has_method) else {
        let reason = if has_method { "no_conversion_plan" } else { "no_payment_method" };
        return expire_trial(state, id, reason).await;
    };
    let period = (trial_end, plan.cycle.period_end(trial_end, 0));
    let currency = plan.price.currency();
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
                currency,
                lines: Line::period_fee(&plan.name, plan.cycle, &plan.pricing(), sub.quantity, Some(period))
                    .map_err(ServiceError::internal)?,
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
            charge_attempt(state, invoice.id, invoice.attempt_count, request_id).await
        }
        _ => Ok(()),
    }
}

async fn expire_trial(state: &AppState, id: SubscriptionId, reason: &'static str) -> Result<(), JobError> {
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
