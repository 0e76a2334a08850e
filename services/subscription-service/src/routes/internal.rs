//! `/v1/internal`: what the payment service asks before every charge. Signed like webhooks with the
//! payment→subscription secrets; for these GETs the signed bytes are the request line, `"GET <path>"`, so a
//! signature is good for one route and one object. A user's JWT is not accepted (401). Not in the public
//! OpenAPI document.

use actix_web::{HttpResponse, web};
use billing_contract::internal::InvoiceDue;
use billing_http::signed::{FromPaymentService, SignedLine};
use billing_http::{ApiError, ok};
use uuid::Uuid;

use crate::db;
use crate::db::models::InvoiceRow;
use crate::error::ServiceError;
use crate::routes::dto::amount;
use crate::state::AppState;

async fn due(state: &AppState, invoice: InvoiceRow) -> Result<InvoiceDue, ServiceError> {
    let payment_method_id = match invoice.subscription_id {
        Some(id) => db::subscriptions::find(&mut *state.conn().await?, id).await?.and_then(|s| s.payment_method_id),
        None => None,
    };
    let currency = invoice.currency.trim().to_owned();
    Ok(InvoiceDue {
        payable: invoice.status == "open" && !invoice.amount_due.is_zero(),
        amount_due: amount(invoice.amount_due, &currency),
        invoice_id: invoice.id,
        user_id: invoice.user_id,
        subscription_id: invoice.subscription_id,
        number: invoice.number,
        status: invoice.status,
        currency,
        payment_method_id,
    })
}

/// `GET /v1/internal/invoices/{id}`: who owns the invoice and what is due.
pub async fn invoice(
    state: web::Data<AppState>,
    _signed: SignedLine<FromPaymentService>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let row = db::invoices::find(&mut *state.conn().await.map_err(ApiError::from)?, id.into_inner())
        .await
        .map_err(ServiceError::from)?
        .ok_or(ServiceError::InvoiceNotFound)?;
    Ok(ok(due(&state, row).await?, "invoice"))
}

/// `GET /v1/internal/subscriptions/{id}/due`: the subscription's open invoice; with none open, its newest invoice
/// (not payable, so paying an active subscription is a 409 naming the invoice's status, not a 404).
pub async fn subscription_due(
    state: web::Data<AppState>,
    _signed: SignedLine<FromPaymentService>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut conn = state.conn().await?;
    if db::subscriptions::find(&mut conn, id).await.map_err(ServiceError::from)?.is_none() {
        return Err(ServiceError::SubscriptionNotFound.into());
    }
    let open = db::invoices::open_for_subscription(&mut conn, id).await.map_err(ServiceError::from)?;
    let invoice = match open.into_iter().max_by_key(|i| i.created_at) {
        Some(open) => open,
        None => db::invoices::latest_for_subscription(&mut conn, id)
            .await
            .map_err(ServiceError::from)?
            .ok_or(ServiceError::InvoiceNotFound)?,
    };
    drop(conn);
    Ok(ok(due(&state, invoice).await?, "amount due"))
}
