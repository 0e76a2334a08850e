//! `/v1/invoices`.

use actix_web::{HttpResponse, web};
use billing_domain::{Currency, InvoiceKind, InvoiceStatus, LineKind};
use billing_http::rfc3339;
use billing_http::{ApiError, AuthUser, ok};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{amount, ts};
use crate::services::invoices;
use crate::services::invoices::{InvoiceDraft, InvoiceLineRow, InvoiceRow, InvoiceView};
use crate::state::AppState;

/// The caller's invoices, newest first.
#[utoipa::path(get, path = "/v1/invoices/me", tag = "invoices", security(("bearer" = [])),
    responses((status = 200, description = "Invoices with their lines", body = Vec<InvoiceDto>)))]
pub async fn list_mine(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let list = invoices::list_mine(&state, user.id.into()).await?;
    Ok(ok(list.into_iter().map(InvoiceDto::from).collect::<Vec<_>>(), "invoices"))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UpcomingQuery {
    /// A subscription of the caller (any, for an administrator); default: the caller's active one.
    pub subscription_id: Option<Uuid>,
}

/// The invoice a subscription's period end would issue if it came now: the next period's fee (a scheduled
/// downgrade included), the usage counted so far, the prorations waiting for it. Nothing is written; the invoice
/// issued later for the same usage is the same.
#[utoipa::path(get, path = "/v1/invoices/upcoming", tag = "invoices", security(("bearer" = [])),
    params(UpcomingQuery),
    responses(
        (status = 200, description = "The next invoice, not issued", body = UpcomingInvoiceDto),
        (status = 404, description = "`no_active_subscription` (nothing will be invoiced), or `subscription_not_found`", body = billing_http::error::ErrorEnvelope)))]
pub async fn upcoming(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<UpcomingQuery>,
) -> Result<HttpResponse, ApiError> {
    let draft = invoices::upcoming(&state, user, query.into_inner().subscription_id.map(Into::into)).await?;
    let dto = draft_dto(draft);
    Ok(ok(dto, "upcoming invoice"))
}

/// An invoice not yet issued, as the API shows it.
pub(crate) fn draft_dto(draft: InvoiceDraft) -> UpcomingInvoiceDto {
    let c = draft.currency;
    let total = draft.lines.iter().map(|l| l.amount.to_decimal()).sum::<rust_decimal::Decimal>();
    UpcomingInvoiceDto {
        subscription_id: draft.subscription_id.map(Into::into),
        kind: draft.kind,
        currency: c,
        period_start: ts(draft.period.map(|p| p.0)),
        period_end: ts(draft.period.map(|p| p.1)),
        subtotal: amount(total, c),
        total: amount(total, c),
        amount_due: amount(total.max(rust_decimal::Decimal::ZERO), c),
        lines: draft
            .lines
            .into_iter()
            .map(|l| InvoiceLineDto {
                kind: l.kind,
                description: l.description,
                quantity: l.quantity,
                unit_amount: amount(l.unit_amount, c),
                amount: amount(l.amount.to_decimal(), c),
                period_start: ts(l.period.map(|p| p.0)),
                period_end: ts(l.period.map(|p| p.1)),
                feature: l.feature,
                tier: l.tier.map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
            })
            .collect(),
    }
}

/// An invoice not yet issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpcomingInvoiceDto {
    pub subscription_id: Option<Uuid>,
    /// `renewal`, or `final` for a subscription ending at its period end.
    #[schema(value_type = String, example = "renewal")]
    pub kind: InvoiceKind,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub lines: Vec<InvoiceLineDto>,
    #[schema(example = "29.99")]
    pub subtotal: String,
    #[schema(example = "29.99")]
    pub total: String,
    #[schema(example = "29.99")]
    pub amount_due: String,
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

/// The invoice as a PDF (owner or admin).
#[utoipa::path(get, path = "/v1/invoices/{id}/pdf", tag = "invoices", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice as a PDF document", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, description = "`invoice_not_found` (also someone else's)", body = billing_http::error::ErrorEnvelope)))]
pub async fn pdf(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (name, document) = invoices::pdf(&state, user, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header(("Content-Disposition", format!("inline; filename=\"{name}.pdf\"")))
        .body(document))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineDto {
    #[schema(value_type = String, example = "subscription")]
    pub kind: LineKind,
    pub description: String,
    pub quantity: i64,
    /// The price of one unit; a usage price may have more digits than the currency.
    #[schema(example = "29.99")]
    pub unit_amount: String,
    /// `quantity × unit_amount`, rounded once to the currency's minor unit.
    #[schema(example = "29.99")]
    pub amount: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    /// The metered feature (usage lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The tier the units were priced at, from 1 (usage lines of a tiered price only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceDto {
    pub id: Uuid,
    #[schema(example = "INV-202611-0001")]
    pub number: Option<String>,
    #[schema(value_type = String, example = "open")]
    pub status: InvoiceStatus,
    #[schema(value_type = String, example = "initial")]
    pub kind: InvoiceKind,
    pub subscription_id: Option<Uuid>,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    #[schema(example = "29.99")]
    pub subtotal: String,
    #[schema(example = "29.99")]
    pub total: String,
    #[schema(example = "29.99")]
    pub amount_due: String,
    #[schema(example = "0.00")]
    pub amount_paid: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub lines: Vec<InvoiceLineDto>,
    pub created_at: String,
    pub finalized_at: Option<String>,
    pub due_at: Option<String>,
    pub paid_at: Option<String>,
    /// Charge attempts made so far (the first charge and dunning retries).
    pub attempt_count: i32,
    /// When dunning tries again; absent when no retry is planned.
    pub next_attempt_at: Option<String>,
    /// The decline code of the last failed attempt.
    pub last_decline_code: Option<String>,
    /// The sum of its credit notes: what was refunded of its payment. The invoice's own amounts never change.
    #[schema(example = "0.00")]
    pub amount_credited: String,
    pub credit_notes: Vec<CreditNoteDto>,
}

/// A refund of an invoice's payment, as a document of its own with a gapless number.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteDto {
    pub id: Uuid,
    #[schema(example = "CN-202611-0001")]
    pub number: String,
    #[schema(example = "10.00")]
    pub amount: String,
    pub reason: Option<String>,
    /// The payment service's refund it records.
    pub refund_id: Uuid,
    pub transaction_id: Uuid,
    pub created_at: String,
}

fn line_dto(l: InvoiceLineRow, currency: Currency) -> InvoiceLineDto {
    InvoiceLineDto {
        kind: l.kind,
        description: l.description,
        quantity: l.quantity,
        unit_amount: amount(l.unit_amount, currency),
        amount: amount(l.amount, currency),
        period_start: ts(l.period_start),
        period_end: ts(l.period_end),
        feature: l.feature,
        tier: l.tier,
    }
}

impl From<InvoiceView> for InvoiceDto {
    fn from(v: InvoiceView) -> Self {
        let i: InvoiceRow = v.invoice;
        let c = i.currency;
        Self {
            id: i.id.into(),
            number: i.number,
            status: i.status,
            kind: i.kind,
            subscription_id: i.subscription_id.map(Into::into),
            subtotal: amount(i.subtotal, c),
            total: amount(i.total, c),
            amount_due: amount(i.amount_due, c),
            amount_paid: amount(i.amount_paid, c),
            period_start: ts(i.period_start),
            period_end: ts(i.period_end),
            lines: v.lines.into_iter().map(|l| line_dto(l, c)).collect(),
            created_at: rfc3339(i.created_at),
            finalized_at: ts(i.finalized_at),
            due_at: ts(i.due_at),
            paid_at: ts(i.paid_at),
            attempt_count: i.attempt_count,
            next_attempt_at: ts(i.next_attempt_at),
            last_decline_code: i.last_decline_code,
            amount_credited: amount(v.credit_notes.iter().map(|n| n.amount).sum(), c),
            credit_notes: v
                .credit_notes
                .into_iter()
                .map(|n| CreditNoteDto {
                    id: n.id,
                    amount: amount(n.amount, c),
                    number: n.number,
                    reason: n.reason,
                    refund_id: n.refund_id.into(),
                    transaction_id: n.transaction_id.into(),
                    created_at: rfc3339(n.created_at),
                })
                .collect(),
            currency: c,
        }
    }
}
