//! `/v1/invoices`.

use actix_web::{HttpResponse, web};
use billing_http::{ApiError, AuthUser, ok};
use uuid::Uuid;

use super::dto::InvoiceDto;
use crate::services::invoices;
use crate::state::AppState;

/// The caller's invoices, newest first.
#[utoipa::path(get, path = "/v1/invoices/me", tag = "invoices", security(("bearer" = [])),
    responses((status = 200, description = "Invoices with their lines", body = Vec<InvoiceDto>)))]
pub async fn list_mine(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let list = invoices::list_mine(&state, user.id.into()).await?;
    Ok(ok(list.into_iter().map(InvoiceDto::from).collect::<Vec<_>>(), "invoices"))
}

/// One invoice (owner or admin).
#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "invoices", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice", body = InvoiceDto),
        (status = 404, description = "`invoice_not_found` (also for another user's)", body = billing_http::error::ErrorEnvelope)))]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let view = invoices::get(&state, user, id.into_inner().into()).await?;
    Ok(ok(InvoiceDto::from(view), "invoice"))
}
