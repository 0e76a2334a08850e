//! `q:sub:plan_change`: an upgrade's proration invoice gets its first charge attempt (through
//! `q:sub:payment_initiation`); one with nothing to pay is settled at once.

use billing_domain::InvoiceId;
use billing_domain::InvoiceStatus;
use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job, QueueName};
use diesel_async::AsyncConnection;

use super::retry;
use crate::db;
use crate::error::ServiceError;
use crate::services::billing::send;
use crate::services::subscriptions::ProrationDue;
use crate::state::AppState;

/// `q:sub:plan_change`: an upgrade's proration invoice gets its first charge attempt (through
/// `q:sub:payment_initiation`); one with nothing to pay is settled at once.
#[derive(Debug)]
pub struct PlanChange;

impl Job for PlanChange {
    type Payload = ProrationDue;
    type State = AppState;

    async fn run(state: &AppState, job: ProrationDue, _envelope: &Envelope) -> Result<(), JobError> {
        first_attempt(state, job.invoice_id).await
    }
}

async fn first_attempt(state: &AppState, id: InvoiceId) -> Result<(), JobError> {
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
                db::invoices::mark_paid(conn, invoice.id, rust_decimal::Decimal::ZERO, None, None, now).await?;
                return Ok(None);
            }
            let (row, job) = crate::services::billing::queue_attempt(conn, invoice.id).await?;
            Ok(Some((row, job)))
        })
        .await
        .map_err(retry)?;
    if let Some(job) = job {
        send(state, QueueName::SubPaymentInitiation, vec![job]).await;
    }
    Ok(())
}
