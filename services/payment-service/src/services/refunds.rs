//! Refunds: requested against a successful payment, reserved under the payment's row lock so their sum never
//! passes what was captured (even under concurrent requests), processed by `q:pay:refund_initiation`.

use crate::db::{RefundStatus, TransactionStatus};
use billing_contract::events::RefundSucceeded;
use billing_contract::{PaymentEvent, PaymentEventDetail};
use billing_domain::{AmountText, Currency, Money};
use billing_queue::{NewJob, QueueName, outbox};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::db::schema::{refunds, transactions};
use crate::error::ServiceError;
use crate::gateway::RefundOutcome;
use crate::state::AppState;
use billing_http::AuthUser;

/// A refund as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = refunds, check_for_backend(diesel::pg::Pg))]
pub struct RefundRow {
    pub id: Uuid,
    pub transaction_id: Uuid,
    pub user_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub status: RefundStatus,
    pub reason: Option<String>,
    pub gateway_reference: Option<String>,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    /// End the subscription at once when the refund succeeds.
    pub cancel_subscription: bool,
}

/// A refund accepted for processing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefundAccepted {
    pub refund_id: Uuid,
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
    id: Uuid,
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
pub async fn return_unapplied_payment(state: &AppState, id: Uuid, why: &str) -> Result<(), ServiceError> {
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
    id: Uuid,
    input: RefundRequest,
) -> Result<RefundAccepted, ServiceError> {
    let RefundRequest { amount, reason, cancel_subscription } = input;
    let mut conn = state.conn().await?;
    conn.transaction::<_, ServiceError, _>(async move |conn| {
        // The row lock serialises refunds of one payment: each sees what the others reserved.
        let (owner, status, total, refunded, currency): (Uuid, TransactionStatus, Decimal, Decimal, String) =
            transactions::table
                .find(id)
                .for_update()
                .select((
                    transactions::user_id,
                    transactions::status,
                    transactions::amount,
                    transactions::refunded_amount,
                    transactions::currency,
                ))
                .first(conn)
                .await
                .optional()?
                .ok_or(ServiceError::PaymentNotFound)?;
        if let Some(caller) = caller.filter(|c| !c.is_admin()) {
            return Err(if owner == caller.id { ServiceError::RefundForbidden } else { ServiceError::PaymentNotFound });
        }
        if status != TransactionStatus::Succeeded {
            return Err(ServiceError::NotRefundable("only a successful payment can be refunded".to_owned()));
        }
        let currency =
            Currency::from_code(currency.trim()).ok_or_else(|| ServiceError::Internal("bad currency".into()))?;
        let remaining =
            Money::from_decimal(total - refunded, currency).map_err(|e| ServiceError::Internal(e.to_string()))?;
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
        diesel::update(transactions::table.find(id))
            .set(transactions::refunded_amount.eq(transactions::refunded_amount + amount.to_decimal()))
            .execute(conn)
            .await?;
        let refund_id = Uuid::now_v7();
        diesel::insert_into(refunds::table)
            .values((
                refunds::id.eq(refund_id),
                refunds::transaction_id.eq(id),
                refunds::user_id.eq(owner),
                refunds::amount.eq(amount.to_decimal()),
                refunds::currency.eq(currency.code()),
                refunds::status.eq(RefundStatus::Pending),
                refunds::reason.eq(&reason),
                refunds::cancel_subscription.eq(cancel_subscription),
                refunds::idempotency_key.eq(format!("refund:{refund_id}")),
            ))
            .execute(conn)
            .await?;
        let job = NewJob::new("refund", format!("refund:{refund_id}"), json!({"refund_id": refund_id}))
            .correlated(id.to_string());
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
pub async fn process(state: &AppState, refund_id: Uuid) -> Result<(), billing_queue::worker::JobError> {
    use billing_queue::worker::JobError;
    let retry = |e: &dyn std::fmt::Display| JobError::Retry(e.to_string());
    let mut conn = state.conn().await.map_err(|e| retry(&e))?;
    let Some(refund) = refunds::table
        .find(refund_id)
        .select(RefundRow::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(|e| retry(&e))?
    else {
        return Err(JobError::Permanent(format!("refund {refund_id} does not exist")));
    };
    if refund.status != RefundStatus::Pending {
        return Ok(());
    }
    let reference: Option<String> = transactions::table
        .find(refund.transaction_id)
        .select(transactions::gateway_reference)
        .first(&mut conn)
        .await
        .map_err(|e| retry(&e))?;
    drop(conn);
    let currency =
        Currency::from_code(refund.currency.trim()).ok_or_else(|| JobError::Permanent("bad currency".into()))?;
    let amount = Money::from_decimal(refund.amount, currency).map_err(|e| JobError::Permanent(e.to_string()))?;
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
pub async fn settle(state: &AppState, refund_id: Uuid, outcome: RefundOutcome) -> Result<(), ServiceError> {
    let now = state.now();
    let mut conn = state.conn().await?;
    conn.transaction::<_, ServiceError, _>(async move |conn| {
        let Some(refund) = refunds::table
            .find(refund_id)
            .for_update()
            .select(RefundRow::as_select())
            .first(conn)
            .await
            .optional()?
            .filter(|r| r.status == RefundStatus::Pending)
        else {
            return Ok(());
        };
        let (invoice, subscription): (Uuid, Option<Uuid>) = transactions::table
            .find(refund.transaction_id)
            .select((transactions::invoice_id, transactions::subscription_id))
            .first(conn)
            .await?;
        match outcome {
            RefundOutcome::Succeeded { reference } => {
                diesel::update(refunds::table.find(refund.id))
                    .set((refunds::status.eq(RefundStatus::Succeeded), refunds::gateway_reference.eq(&reference)))
                    .execute(conn)
                    .await?;
                let currency = Currency::from_code(refund.currency.trim())
                    .ok_or_else(|| ServiceError::Internal("bad currency".into()))?;
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
                diesel::update(refunds::table.find(refund.id))
                    .set((refunds::status.eq(RefundStatus::Failed), refunds::failure_message.eq(&message)))
                    .execute(conn)
                    .await?;
                diesel::update(transactions::table.find(refund.transaction_id))
                    .set(transactions::refunded_amount.eq(transactions::refunded_amount - refund.amount))
                    .execute(conn)
                    .await?;
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
) -> Result<Option<Uuid>, ServiceError> {
    let mut query = refunds::table.filter(refunds::status.eq(RefundStatus::Pending)).into_boxed();
    query = match billing_key {
        Some(key) => query.filter(refunds::gateway_reference.eq(reference).or(refunds::idempotency_key.eq(key))),
        None => query.filter(refunds::gateway_reference.eq(reference)),
    };
    Ok(query.select(refunds::id).first(&mut *state.conn().await?).await.optional()?)
}

/// The refunds of `payments`, newest first.
pub async fn of_transactions(state: &AppState, payments: &[Uuid]) -> Result<Vec<RefundRow>, ServiceError> {
    Ok(refunds::table
        .filter(refunds::transaction_id.eq_any(payments))
        .order((refunds::created_at.desc(), refunds::id.desc()))
        .select(RefundRow::as_select())
        .load(&mut *state.conn().await?)
        .await?)
}
