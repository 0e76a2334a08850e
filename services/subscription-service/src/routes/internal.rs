//! `/v1/internal`: what the payment service asks before every charge. Signed like webhooks with the
//! payment→subscription secrets; for these GETs the signed bytes are the request line, `"GET <path>"`, so a
//! signature is good for one route and one object. A user's JWT is not accepted (401). Not in the public
//! OpenAPI document.

use actix_web::{HttpResponse, web};
use billing_http::signed::{FromPaymentService, SignedLine};
use billing_http::{ApiError, ok};
use uuid::Uuid;

use crate::services::invoices;
use crate::state::AppState;

/// `GET /v1/internal/invoices/{id}`: who owns the invoice and what is due.
pub async fn invoice(
    state: web::Data<AppState>,
    _signed: SignedLine<FromPaymentService>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(invoices::due(&state, id.into_inner().into()).await?, "invoice"))
}

/// `GET /v1/internal/subscriptions/{id}/due`: the subscription's open invoice; with none open, its newest invoice
/// (not payable, so paying an active subscription is a 409 naming the invoice's status, not a 404).
pub async fn subscription_due(
    state: web::Data<AppState>,
    _signed: SignedLine<FromPaymentService>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(invoices::subscription_due(&state, id.into_inner().into()).await?, "amount due"))
}
