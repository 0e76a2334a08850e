//! `/v1/internal`: what the subscription service asks. `POST /v1/internal/charges` charges a saved payment method
//! (renewals, trial conversions, prorations), signed over the raw body; `GET
//! /v1/internal/users/{id}/default-payment-method` says whether there is one to charge, signed over the request
//! line. Both with the subscription→payment secrets; a user's JWT is 401. Not in the public OpenAPI document.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use billing_contract::internal::{ChargeRequest, DefaultPaymentMethod};
use billing_domain::AmountText;
use billing_http::signed::{FromSubscriptionService, Signed, SignedLine};
use billing_http::{ApiError, ApiResponse};
use uuid::Uuid;

use crate::error::ServiceError;
use crate::services::payments::{self, Funding, PayRequest};
use crate::state::AppState;

/// The user's default payment method: 200 `{payment_method_id, brand, last4}`, or 404 when none is saved.
pub async fn default_method(
    state: web::Data<AppState>,
    _signed: SignedLine<FromSubscriptionService>,
    user: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let first = crate::services::methods::default_for(&mut *state.conn().await?, user.into_inner().into())
        .await?
        .ok_or_else(|| ApiError::not_found("payment_method_not_found", "the user has no saved payment method"))?;
    let method =
        DefaultPaymentMethod { payment_method_id: first.id, brand: first.brand, last4: first.last4.trim().to_owned() };
    Ok(billing_http::ok(method, "default payment method"))
}

/// Charges an invoice to a saved payment method; 201 with the transaction, 402 when declined.
pub async fn charge(
    state: web::Data<AppState>,
    signed: Signed<ChargeRequest, FromSubscriptionService>,
) -> Result<HttpResponse, ApiError> {
    let input = signed.body;
    if input.idempotency_key.is_empty() || input.idempotency_key.len() > 255 {
        return Err(ApiError::invalid_field("idempotency_key", "1 to 255 characters"));
    }
    let mut conn = state.conn().await?;
    // The named method while it lives; once its owner deleted it, their default.
    let named = match input.payment_method_id {
        Some(id) => crate::services::methods::live(&mut conn, input.user_id, id).await?,
        None => None,
    };
    let method = match named {
        Some(id) => id,
        None => crate::services::methods::default_for(&mut conn, input.user_id)
            .await?
            .map(|method| method.id)
            .ok_or_else(|| ServiceError::invalid("payment_method_id", "the user has no saved payment method"))?,
    };
    drop(conn);
    let request = PayRequest {
        user: input.user_id,
        subscription_id: None,
        invoice_id: Some(input.invoice_id),
        amount: AmountText(input.amount),
        currency: input.currency,
        funding: Funding::Saved(method),
        gateway_key: format!("internal:{}", input.idempotency_key),
        request_id: billing_http::current_request_id().unwrap_or_default(),
        off_session: true,
    };
    let paid = payments::pay(&state, request).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(ApiResponse::new(paid, "charged")))
}
