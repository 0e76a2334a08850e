//! `q:sub:payment_initiation`: one charge attempt of an invoice, made through the payment service under the
//! attempt's key (a redelivered job is the same charge, never a second one), its answer applied as the payment
//! event it is: whichever of the answer and the webhook comes first applies, the other is a duplicate.

use billing_domain::InvoiceId;
use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job};
use diesel_async::AsyncConnection;
use serde_json::json;

use super::{request_id, retry};
use crate::clients::{ChargeOutcome, ChargeRequest};
use crate::db;
use crate::db::models::InvoiceRow;
use crate::error::ServiceError;
use crate::services::billing::{ChargeAttempt, attempt_key};
use crate::services::settlement::{self, Failure, PaymentEvent, attempt_failed};
use crate::state::AppState;
use billing_domain::{InvoiceStatus, Money};

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
    match settlement::apply(state, event, raw).await.map_err(retry)? {
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
    invoice: InvoiceId,
    attempt: i32,
    code: &str,
) -> Result<(), JobError> {
    let (offsets, now) = (state.infra.settings.billing.dunning_offsets.clone(), state.now());
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
#[derive(Debug)]
pub struct Charge;

impl Job for Charge {
    type Payload = ChargeAttempt;
    type State = AppState;

    async fn run(state: &AppState, job: ChargeAttempt, envelope: &Envelope) -> Result<(), JobError> {
        charge_attempt(state, job.invoice_id, job.attempt, &request_id(envelope)).await
    }
}

/// Charges attempt `attempt` of an invoice under its [`attempt_key`], so a redelivered job is the same charge,
/// never a second one, and applies the outcome.
pub(crate) async fn charge_attempt(
    state: &AppState,
    invoice_id: InvoiceId,
    attempt: i32,
    request_id: &str,
) -> Result<(), JobError> {
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
