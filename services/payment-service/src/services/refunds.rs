//! Refunds: requested against a successful payment, reserved under the payment's row lock so their sum never
//! passes what was captured (even under concurrent requests), processed by `q:pay:refund_initiation`.

use billing_contract::events::RefundSucceeded;
use billing_contract::{PaymentEvent, PaymentEventDetail};
use billing_domain::{AmountText, Money};
use billing_domain::{RefundId, TransactionId};
use billing_queue::{Payload, QueueName, outbox};
use diesel_async::AsyncConnection;
use serde::Serialize;

use crate::clients::gateway::RefundOutcome;
use crate::db;
use crate::db::models::NewRefund;
pub use crate::db::models::RefundRow;
use crate::db::{RefundStatus, TransactionStatus};
use crate::error::ServiceError;
use crate::state::AppState;
use billing_http::AuthUser;

/// `q:pay:refund_initiation`: a reserved refund, to be asked of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RefundRequested {
    pub refund_id: RefundId,
}

impl Payload for RefundRequested {
    const QUEUE: QueueName = QueueName::PayRefundInitiation;
    const ACTION: &'static str = "refund";
}

/// A refund accepted for processing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefundAccepted {
    #[schema(value_type = uuid::Uuid)]
    pub refund_id: RefundId,
    #[schema(example = "pending")]
    pub status: &'static str,
    #[schema(example = "10.00")]
    pub amount: String,
    #[schema(example = "USD")]
    pub currency: String,
}

/// What a merchant asks to give back.
#[derive(Debug, Default)]
pub struct RefundRequest {
    /// Default: all that remains refundable.
    pub amount: Option<AmountText>,
    pub reason: Option<String>,
    /// End the subscription at once when the refund succeeds (default false: access runs to the period end).
    pub cancel_subscription: bool,
}

/// Reserves and queues a refund of payment `id`. Refunds are a merchant operation (administrators): the payment's
/// owner gets 403 (they may see the payment, not give it back), anyone else 404.
pub async fn request(
    state: &AppState,
    caller: AuthUser,
    id: TransactionId,
    input: RefundRequest,
) -> Result<RefundAccepted, ServiceError> {
    let RefundRequest { reason, .. } = &input;
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ServiceError::invalid("reason", "at most 500 characters"));
    }
    reserve(state, Some(caller), id, input).await
}

/// Gives back all that remains of payment `id` without anyone asking: the subscription service could not apply the
/// payment (its invoice was voided, or paid by another payment, while the charge was in flight). Done once per
/// payment: a second call finds nothing left to refund.
pub async fn return_unapplied_payment(state: &AppState, id: TransactionId, why: &str) -> Result<(), ServiceError> {
    let input =
        RefundRequest { amount: None, reason: Some(format!("payment_not_applied: {why}")), cancel_subscription: false };
    match reserve(state, None, id, input).await {
        Ok(accepted) => {
            tracing::warn!(transaction_id = %id, refund_id = %accepted.refund_id, reason = why, "an unapplied payment is being refunded");
            Ok(())
        }
        Err(ServiceError::NotRefundable(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

/// Reserves and queues a refund; `caller` is the person asking (checked), or none for the system itself.
async fn reserve(
    state: &AppState,
    caller: Option<AuthUser>,
    id: TransactionId,
    input: RefundRequest,
) -> Result<RefundAccepted, ServiceError> {
    let RefundRequest { amount, reason, cancel_subscription } = input;
    let mut conn = state.conn().await?;
    conn.transaction::<_, ServiceError, _>(async move |conn| {
        // The row lock serialises refunds of one payment: each sees what the others reserved.
        let payment = db::transactions::find_for_update(conn, id).await?.ok_or(ServiceError::PaymentNotFound)?;
        let owner = payment.user_id;
        if let Some(caller) = caller.filter(|c| !c.is_admin()) {
            return Err(if owner == caller.id.into() {
                ServiceError::RefundForbidden
            } else {
                ServiceError::PaymentNotFound
            });
        }
        if payment.status != TransactionStatus::Succeeded {
            return Err(ServiceError::NotRefundable("only a successful payment can be refunded".to_owned()));
        }
        let currency = payment.currency;
        let remaining = Money::from_decimal(payment.amount - payment.refunded_amount, currency)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let amount = match amount {
            Some(text) => text.to_money(currency).map_err(|e| ServiceError::invalid("amount", e.to_string()))?,
            None => remaining,
        };
        if amount.minor() <= 0 {
            return Err(if remaining.is_zero() {
                ServiceError::NotRefundable("the payment is already fully refunded".to_owned())
            } else {
                ServiceError::invalid("amount", "must be positive")
            });
        }
        if amount.minor() > remaining.minor() {
            return Err(ServiceError::NotRefundable(format!(
                "at most {} {} remains refundable",
                remaining.amount_string(),
                currency.code()
            )));
        }
        db::transactions::add_refunded(conn, id, amount.to_decimal()).await?;
        let refund_id = RefundId::new();
        let key = format!("refund:{refund_id}");
        let row = NewRefund {
            id: refund_id,
            transaction_id: id,
            user_id: owner,
            amount: amount.to_decimal(),
            currency,
            status: RefundStatus::Pending,
            reason: reason.as_deref(),
            cancel_subscription,
            idempotency_key: &key,
        };
        db::refunds::insert(conn, &row).await?;
        let job = RefundRequested { refund_id }.job(format!("refund:{refund_id}")).correlated(id.to_string());
        outbox::push(conn, QueueName::PayRefundInitiation.as_str(), &job, None).await?;
        Ok(RefundAccepted {
            refund_id,
            status: RefundStatus::Pending.as_str(),
            amount: amount.amount_string(),
            currency: currency.code().to_owned(),
        })
    })
    .await
}

/// The `q:pay:refund_initiation` job: asks the gateway (once per refund, by its key) and records the outcome.
pub async fn process(state: &AppState, refund_id: RefundId) -> Result<(), billing_queue::worker::JobError> {
    use billing_queue::worker::JobError;
    let retry = |e: &dyn std::fmt::Display| JobError::Retry(e.to_string());
    let mut conn = state.conn().await.map_err(|e| retry(&e))?;
    let Some(refund) = db::refunds::find(&mut conn, refund_id).await.map_err(|e| retry(&e))? else {
        return Err(JobError::Permanent(format!("refund {refund_id} does not exist")));
    };
    if refund.status != RefundStatus::Pending {
        return Ok(());
    }
    let reference = db::transactions::find(&mut conn, refund.transaction_id)
        .await
        .map_err(|e| retry(&e))?
        .and_then(|payment| payment.gateway_reference);
    drop(conn);
    let amount = Money::from_decimal(refund.amount, refund.currency).map_err(|e| JobError::Permanent(e.to_string()))?;
    let outcome = state
        .gateway
        .refund(refund.idempotency_key.clone(), reference.unwrap_or_default(), amount)
        .await
        .map_err(|e| retry(&e))?;
    settle(state, refund.id, outcome).await.map_err(|e| retry(&e))
}

/// Records a refund's outcome once, whoever learns it first (the worker's call or the gateway's event): a success
/// is announced to the subscription service as `refund.succeeded`, a failure gives the reservation back. A refund
/// that is no longer pending is left as it is.
pub async fn settle(state: &AppState, refund_id: RefundId, outcome: RefundOutcome) -> Result<(), ServiceError> {
    let now = state.now();
    let mut conn = state.conn().await?;
    conn.transaction::<_, ServiceError, _>(async move |conn| {
        let Some(refund) =
            db::refunds::find_for_update(conn, refund_id).await?.filter(|r| r.status == RefundStatus::Pending)
        else {
            return Ok(());
        };
        let payment = db::transactions::find(conn, refund.transaction_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("a refund of no payment".into()))?;
        let (invoice, subscription) = (payment.invoice_id, payment.subscription_id);
        match outcome {
            RefundOutcome::Succeeded { reference } => {
                db::refunds::mark_succeeded(conn, refund.id, &reference).await?;
                let currency = refund.currency;
                let amount =
                    Money::from_decimal(refund.amount, currency).map_err(|e| ServiceError::Internal(e.to_string()))?;
                let event = PaymentEvent {
                    event_id: format!("evt_{}", refund.id),
                    transaction_id: refund.transaction_id,
                    subscription_id: subscription,
                    invoice_id: invoice,
                    amount: amount.amount_string(),
                    currency: currency.code().to_owned(),
                    occurred_at: now,
                    detail: PaymentEventDetail::RefundSucceeded(RefundSucceeded {
                        refund_id: Some(refund.id),
                        reason: refund.reason.clone(),
                        cancel_subscription: refund.cancel_subscription,
                    }),
                };
                let job = crate::services::payments::event_job(&event).correlated(refund.transaction_id.to_string());
                outbox::push(conn, QueueName::PaySubscriptionUpdate.as_str(), &job, None).await?;
            }
            RefundOutcome::Failed { message, .. } => {
                db::refunds::mark_failed(conn, refund.id, &message).await?;
                db::transactions::add_refunded(conn, refund.transaction_id, -refund.amount).await?;
            }
        }
        Ok(())
    })
    .await
}

/// The pending refund the gateway knows by `reference` or by our idempotency key `billing_key`.
pub async fn pending_by_gateway(
    state: &AppState,
    reference: &str,
    billing_key: Option<&str>,
) -> Result<Option<RefundId>, ServiceError> {
    Ok(db::refunds::pending_by_gateway(&mut *state.conn().await?, reference, billing_key).await?)
}

/// The refunds of `payments`, newest first.
pub async fn of_transactions(state: &AppState, payments: &[TransactionId]) -> Result<Vec<RefundRow>, ServiceError> {
    Ok(db::refunds::of_transactions(&mut *state.conn().await?, payments).await?)
}
