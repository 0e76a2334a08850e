//! `/v1/payment-methods`: save a card for later charges, list saved ones.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use billing_http::{ApiError, ApiResponse, AuthUser, ok};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::routes::payments::Sensitive;
use crate::services::{card, methods};
use crate::state::AppState;

/// A card to keep. Its number and CVV go to the gateway and nowhere else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveBody {
    #[schema(value_type = String, example = "4242424242424242")]
    pub card_number: Sensitive,
    #[schema(example = "12/30")]
    pub card_expiry: String,
    #[schema(value_type = String, example = "123")]
    pub card_cvv: Sensitive,
    #[schema(example = "Ada Lovelace")]
    pub cardholder_name: String,
}

/// A saved payment method.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodDto {
    pub id: Uuid,
    #[schema(example = "visa")]
    pub brand: String,
    #[schema(example = "4242")]
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub cardholder_name: String,
    /// The default (the one chosen, else the newest): renewals, dunning retries and trial conversions charge it.
    pub default: bool,
    pub created_at: String,
}

fn dto(row: methods::MethodRow, default: bool) -> MethodDto {
    MethodDto {
        id: row.id.into(),
        brand: row.brand,
        last4: row.last4.trim().to_owned(),
        exp_month: row.exp_month,
        exp_year: row.exp_year,
        cardholder_name: row.cardholder_name,
        default,
        created_at: billing_http::rfc3339(row.created_at),
    }
}

/// Save a card without charging it; it becomes the default for renewals.
#[utoipa::path(post, path = "/v1/payment-methods", tag = "payment methods", request_body = SaveBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Saved; the new default", body = MethodDto),
        (status = 422, description = "`validation_failed`: Luhn, expiry, CVV or name (the number is never echoed)", body = billing_http::error::ErrorEnvelope),
        (status = 503, description = "`gateway_unavailable`: nothing saved, try again", body = billing_http::error::ErrorEnvelope)))]
pub async fn save(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: SaveBody = billing_http::extract::parse_json_request(&req, &body)?;
    let card = card::validate(
        &input.card_number.0,
        &input.card_expiry,
        &input.card_cvv.0,
        &input.cardholder_name,
        state.now(),
    )
    .map_err(ServiceError::Validation)?;
    let row = methods::save(&state, user.id.into(), card).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(ApiResponse::new(dto(row, true), "payment method saved")))
}

/// The caller's saved payment methods, the default first.
#[utoipa::path(get, path = "/v1/payment-methods", tag = "payment methods", security(("bearer" = [])),
    responses((status = 200, description = "Saved methods, newest (default) first", body = Vec<MethodDto>)))]
pub async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let rows = methods::list(&state, user.id.into()).await?;
    let items: Vec<MethodDto> = rows.into_iter().enumerate().map(|(i, row)| dto(row, i == 0)).collect();
    Ok(ok(items, "payment methods"))
}

/// Delete a saved payment method: it is never charged again (the payments it made keep showing it). When it was the
/// default, the newest one left becomes the default.
#[utoipa::path(delete, path = "/v1/payment-methods/{id}", tag = "payment methods", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The payment method")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`payment_method_not_found` (also another user's)", body = billing_http::error::ErrorEnvelope)))]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    methods::delete(&state, user.id.into(), id.into_inner().into()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Make a saved payment method the default, the one renewals, retries and trial conversions charge.
#[utoipa::path(post, path = "/v1/payment-methods/{id}/default", tag = "payment methods", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The payment method")),
    responses(
        (status = 200, description = "The method, now the default", body = MethodDto),
        (status = 404, description = "`payment_method_not_found` (also another user's)", body = billing_http::error::ErrorEnvelope)))]
pub async fn make_default(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let row = methods::make_default(&state, user.id.into(), id.into_inner().into()).await?;
    Ok(billing_http::ok(dto(row, true), "default payment method"))
}
