//! The payment service's one error type, and its exhaustive mapping to HTTP.

use billing_domain::TransactionId;
use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use billing_http::ApiError;
use billing_infra::DbError;
use serde_json::json;

/// Everything a service function of the payment service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed")]
    Validation(BTreeMap<String, String>),
    #[error("subscription not found")]
    SubscriptionNotFound,
    #[error("invoice not found")]
    InvoiceNotFound,
    #[error("payment not found")]
    PaymentNotFound,
    #[error("refunds are a merchant operation")]
    RefundForbidden,
    #[error("payment method not found")]
    PaymentMethodNotFound,
    #[error("the invoice cannot be paid")]
    InvoiceNotPayable(String),
    #[error("the payment cannot be refunded: {0}")]
    NotRefundable(String),
    #[error("amount mismatch")]
    AmountMismatch { due: String, currency: String },
    #[error("payment declined")]
    Declined { transaction_id: TransactionId, decline_code: String, message: String, retryable: bool },
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    #[error("idempotency key in use")]
    IdempotencyKeyInUse,
    #[error("the payment gateway is unavailable: {0}")]
    GatewayUnavailable(String),
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// One invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(BTreeMap::from([(field.to_owned(), message.into())]))
    }
}

impl From<DbError> for ServiceError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(e) => Self::Unavailable(e),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::from(err).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Validation(fields) => ApiError::validation(fields),
            ServiceError::SubscriptionNotFound => ApiError::not_found("subscription_not_found", "no such subscription"),
            ServiceError::InvoiceNotFound => ApiError::not_found("invoice_not_found", "no such invoice"),
            ServiceError::PaymentNotFound => ApiError::not_found("payment_not_found", "no such payment"),
            ServiceError::PaymentMethodNotFound => {
                ApiError::not_found("payment_method_not_found", "no such payment method")
            }
            ServiceError::RefundForbidden => {
                ApiError::forbidden("forbidden", "refunds are made by the merchant; ask support to refund this payment")
            }
            ServiceError::InvoiceNotPayable(why) => ApiError::conflict("invoice_not_payable", why),
            ServiceError::NotRefundable(why) => ApiError::conflict("refund_not_allowed", why),
            ServiceError::AmountMismatch { due, currency } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount_mismatch",
                "the amount or currency differs from what is due",
            )
            .with_details(json!({"amount_due": due, "currency": currency})),
            ServiceError::Declined { transaction_id, decline_code, message, retryable } => {
                let details = billing_contract::internal::DeclineDetails {
                    transaction_id,
                    decline_code,
                    retryable: Some(retryable),
                };
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", message)
                    .with_details(serde_json::to_value(details).unwrap_or_default())
            }
            ServiceError::IdempotencyKeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ),
            ServiceError::IdempotencyKeyInUse => ApiError::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed",
            ),
            ServiceError::GatewayUnavailable(cause) => {
                tracing::warn!(error = %cause, "payment gateway unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "gateway_unavailable",
                    "the payment gateway is unavailable; nothing was charged, try again",
                )
            }
            ServiceError::Unavailable(cause) => ApiError::unavailable(&cause),
            ServiceError::Internal(cause) => ApiError::internal(&cause),
        }
    }
}
