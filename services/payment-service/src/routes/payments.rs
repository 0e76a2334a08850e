//! `/v1/payments`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use billing_domain::AmountText;
use billing_http::error::FinalBody;
use billing_http::{ApiError, ApiResponse, AuthUser, ok};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::services::card;
use crate::services::idempotency::{self, Begin};
use crate::services::payments::{self, CardSummary, Funding, Paid, PayRequest, TransactionRow};
use crate::services::refunds::{self, RefundAccepted, RefundRequest};
use crate::state::AppState;

/// A card field taken as text whatever JSON type it arrived as, so an error never echoes its value.
#[derive(Debug, Default)]
pub struct Sensitive(pub String);

impl<'de> Deserialize<'de> for Sensitive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        Ok(Sensitive(match serde_json::from_str::<String>(text) {
            Ok(s) => s,
            Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => text.to_owned(),
            Err(_) => String::new(),
        }))
    }
}

/// A payment request: `amount` and `currency`, what to pay (`subscription_id` or `invoice_id`), and how: the card
/// fields, or `payment_method_id` of a saved card. The card number and CVV are used for this charge and never kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessBody {
    /// Pay this subscription's open invoice…
    pub subscription_id: Option<Uuid>,
    /// …or this invoice.
    pub invoice_id: Option<Uuid>,
    /// Exactly what is due, as a JSON number or string (required).
    #[schema(value_type = String, example = "29.99")]
    pub amount: Option<AmountText>,
    /// Required; any case.
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Pay with this saved card instead of card details.
    pub payment_method_id: Option<Uuid>,
    #[schema(value_type = Option<String>, example = "4242424242424242")]
    pub card_number: Option<Sensitive>,
    #[schema(example = "12/30")]
    pub card_expiry: Option<String>,
    #[schema(value_type = Option<String>, example = "123")]
    pub card_cvv: Option<Sensitive>,
    #[schema(example = "Ada Lovelace")]
    pub cardholder_name: Option<String>,
    /// Keep the card for renewals (default true; card details only).
    pub save_card: Option<bool>,
}

impl ProcessBody {
    /// How the payment is funded, every missing or conflicting field named at once.
    fn funding(&self, now: chrono::DateTime<chrono::Utc>) -> Result<(AmountText, String, Funding), ServiceError> {
        let mut fields = std::collections::BTreeMap::new();
        let required = "is required".to_owned();
        if self.amount.is_none() {
            fields.insert("amount".to_owned(), required.clone());
        }
        if self.currency.is_none() {
            fields.insert("currency".to_owned(), required.clone());
        }
        let card_given = self.card_number.is_some()
            || self.card_expiry.is_some()
            || self.card_cvv.is_some()
            || self.cardholder_name.is_some();
        let funding = match (self.payment_method_id, card_given) {
            (Some(_), true) => {
                fields.insert(
                    "payment_method_id".to_owned(),
                    "give a saved payment method or card details, not both".to_owned(),
                );
                None
            }
            (Some(id), false) => Some(Funding::Saved(id.into())),
            (None, _) => {
                for (name, given) in [
                    ("card_number", self.card_number.is_some()),
                    ("card_expiry", self.card_expiry.is_some()),
                    ("card_cvv", self.card_cvv.is_some()),
                    ("cardholder_name", self.cardholder_name.is_some()),
                ] {
                    if !given {
                        fields.insert(name.to_owned(), required.clone());
                    }
                }
                if fields.keys().any(|k| k.starts_with("card")) {
                    None
                } else {
                    let text = |s: &Option<Sensitive>| s.as_ref().map(|s| s.0.clone()).unwrap_or_default();
                    match card::validate(
                        &text(&self.card_number),
                        self.card_expiry.as_deref().unwrap_or_default(),
                        &text(&self.card_cvv),
                        self.cardholder_name.as_deref().unwrap_or_default(),
                        now,
                    ) {
                        Ok(card) => Some(Funding::Card { card, save: self.save_card.unwrap_or(true) }),
                        Err(bad) => {
                            fields.extend(bad);
                            None
                        }
                    }
                }
            }
        };
        match (funding, &self.amount, &self.currency) {
            (Some(funding), Some(amount), Some(currency)) if fields.is_empty() => {
                Ok((amount.clone(), currency.clone(), funding))
            }
            _ => Err(ServiceError::Validation(fields)),
        }
    }
}

/// A transaction, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionDto {
    pub id: Uuid,
    /// `success`, `failed` or `pending`: the word `POST /v1/payments/process` answers with.
    #[schema(example = "success")]
    pub status: String,
    pub subscription_id: Option<Uuid>,
    pub invoice_id: Uuid,
    #[schema(example = "29.99")]
    pub amount: String,
    #[schema(example = "USD")]
    pub currency: String,
    pub gateway_reference: Option<String>,
    pub decline_code: Option<String>,
    /// The card charged, in the same shape as the answer to `POST /v1/payments/process`.
    pub card: Option<CardSummary>,
    pub created_at: String,
    /// Refunds of this payment, newest first.
    pub refunds: Vec<RefundDto>,
}

/// A refund, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundDto {
    pub id: Uuid,
    #[schema(example = "succeeded")]
    pub status: String,
    #[schema(example = "10.00")]
    pub amount: String,
    pub reason: Option<String>,
    pub created_at: String,
}

impl From<refunds::RefundRow> for RefundDto {
    fn from(r: refunds::RefundRow) -> Self {
        Self {
            amount: r.currency.render(r.amount),
            id: r.id.into(),
            status: r.status.as_str().to_owned(),
            reason: r.reason,
            created_at: billing_http::rfc3339(r.created_at),
        }
    }
}

impl From<TransactionRow> for TransactionDto {
    fn from(t: TransactionRow) -> Self {
        let amount = t.currency.render(t.amount);
        let currency = t.currency.to_string();
        Self {
            id: t.id.into(),
            status: t.status.api_word().to_owned(),
            subscription_id: t.subscription_id.map(Into::into),
            invoice_id: t.invoice_id.into(),
            amount,
            currency,
            gateway_reference: t.gateway_reference,
            decline_code: t.decline_code,
            card: match (t.card_brand, t.card_last4) {
                (Some(brand), Some(last4)) => Some(CardSummary { brand, last4: last4.trim().to_owned() }),
                _ => None,
            },
            created_at: billing_http::rfc3339(t.created_at),
            refunds: Vec::new(),
        }
    }
}

/// Transactions with their refunds attached.
async fn with_refunds(state: &AppState, rows: Vec<TransactionRow>) -> Result<Vec<TransactionDto>, ServiceError> {
    let ids: Vec<_> = rows.iter().map(|t| t.id).collect();
    let mut refunds = refunds::of_transactions(state, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            let mut dto = TransactionDto::from(row);
            let (mine, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut refunds).into_iter().partition(|r| r.transaction_id == id);
            refunds = rest;
            dto.refunds = mine.into_iter().map(RefundDto::from).collect();
            dto
        })
        .collect())
}

/// A page of the caller's payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDto {
    pub items: Vec<TransactionDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn json_response(status: StatusCode, body: Vec<u8>, replayed: bool) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/json");
    if replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    let mut res = builder.body(body);
    res.extensions_mut().insert(FinalBody);
    res
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get("idempotency-key").map(|v| v.to_str().map(str::trim)) {
        None => Ok(None),
        Some(Ok(key)) if (1..=255).contains(&key.len()) => Ok(Some(key.to_owned())),
        Some(_) => Err(ApiError::invalid_field("Idempotency-Key", "1 to 255 visible characters")),
    }
}

/// Pay an invoice with a card.
#[utoipa::path(post, path = "/v1/payments/process", tag = "payments", request_body = ProcessBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "1–255 visible characters. Same key + same body → the first response replayed (Idempotent-Replayed: true); another body → 422 idempotency_key_reused; still running → 409 idempotency_key_in_use")),
    responses(
        (status = 201, description = "Charged", body = Paid),
        (status = 402, description = "`payment_declined` with `details.transaction_id` and `details.decline_code`", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`subscription_not_found` / `invoice_not_found` (also another user's)", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`invoice_not_payable` or `idempotency_key_in_use`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed` (card, amount below the currency minimum), `amount_mismatch`, `idempotency_key_reused`", body = billing_http::error::ErrorEnvelope),
        (status = 503, description = "`gateway_unavailable`: nothing charged; retry with the same Idempotency-Key", body = billing_http::error::ErrorEnvelope)))]
pub async fn process(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let input: ProcessBody = billing_http::extract::parse_json_request(&req, &body)?;
    let (amount, currency, funding) = input.funding(state.now())?;
    let gateway_key = match &key {
        Some(k) => format!("pay:{}:{k}", user.id),
        None => format!("pay:{}", Uuid::now_v7()),
    };
    idempotent(&state, user.id, key, "POST /v1/payments/process", &body, async {
        let request = PayRequest {
            user: user.id.into(),
            subscription_id: input.subscription_id.map(Into::into),
            invoice_id: input.invoice_id.map(Into::into),
            amount,
            currency,
            funding,
            gateway_key,
            request_id: billing_http::current_request_id().unwrap_or_default(),
            off_session: false,
        };
        payments::pay(&state, request)
            .await
            .map(|paid| (StatusCode::CREATED, ApiResponse::new(paid, "payment succeeded")))
    })
    .await
}

/// Runs a money-moving request under its `Idempotency-Key` (when given): a finished first answer is replayed
/// byte for byte, another body under the key is 422, a running one is 409; an answer worth retrying (a
/// dependency was down) is not remembered.
async fn idempotent<T: Serialize>(
    state: &AppState,
    user: Uuid,
    key: Option<String>,
    route: &str,
    body: &[u8],
    run: impl std::future::Future<Output = Result<(StatusCode, ApiResponse<T>), ServiceError>>,
) -> Result<HttpResponse, ApiError> {
    if let Some(key) = &key {
        let secret =
            state.infra.settings.signing.webhook.first().map(|s| s.expose().as_bytes().to_vec()).unwrap_or_default();
        let hash = idempotency::fingerprint(&secret, route, body);
        let mut conn = state.conn().await?;
        if let Begin::Replay { status, body } =
            idempotency::begin(&mut conn, user.into(), key, &hash, state.now()).await?
        {
            return Ok(json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body, true));
        }
    }
    let (status, bytes, retryable) = match run.await {
        Ok((status, response)) => (status, serde_json::to_vec(&response).map_err(|e| ApiError::internal(&e))?, false),
        Err(err) => {
            let retryable = matches!(
                err,
                ServiceError::GatewayUnavailable(_) | ServiceError::Unavailable(_) | ServiceError::Internal(_)
            );
            let api = ApiError::from(err);
            (api.status(), serde_json::to_vec(&api.envelope()).map_err(|e| ApiError::internal(&e))?, retryable)
        }
    };
    if let Some(key) = &key {
        let mut conn = state.conn().await?;
        if retryable {
            idempotency::release(&mut conn, user.into(), key).await?;
        } else {
            idempotency::complete(&mut conn, user.into(), key, status.as_u16(), &bytes).await?;
        }
    }
    Ok(json_response(status, bytes, false))
}

/// A refund request: all that remains refundable unless `amount` says less.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    #[schema(value_type = Option<String>, example = "10.00")]
    pub amount: Option<AmountText>,
    #[schema(example = "requested_by_customer")]
    pub reason: Option<String>,
    /// End the subscription at once when the refund succeeds (default false: a refund gives money back and
    /// leaves access as it is, to the end of the paid period).
    pub cancel_subscription: Option<bool>,
}

/// Refund a payment, fully or partly (administrators: a merchant operation, as in Stripe); processed by the refund
/// queue, the outcome announced by webhook. With `cancel_subscription`, the subscription ends once the refund succeeds.
#[utoipa::path(post, path = "/v1/payments/{id}/refund", tag = "payments", request_body = RefundBody, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Transaction id"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "As for payments")),
    responses(
        (status = 202, description = "Accepted, pending", body = RefundAccepted),
        (status = 403, description = "`forbidden`: the payment's owner (refunds are made by the merchant)", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`payment_not_found` (also another user's payment)", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`refund_not_allowed`: more than remains, or the payment did not succeed", body = billing_http::error::ErrorEnvelope)))]
pub async fn refund(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let input: RefundBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefundBody::default()
    } else {
        billing_http::extract::parse_json_request(&req, &body)?
    };
    let id = id.into_inner();
    idempotent(&state, user.id, key, &format!("POST /v1/payments/{id}/refund"), &body, async {
        let request = RefundRequest {
            amount: input.amount,
            reason: input.reason,
            cancel_subscription: input.cancel_subscription.unwrap_or(false),
        };
        let accepted = refunds::request(&state, user, id.into(), request).await?;
        Ok((StatusCode::ACCEPTED, ApiResponse::new(accepted, "refund accepted")))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn parse_cursor(cursor: &str) -> Option<(chrono::DateTime<chrono::Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('_')?;
    Some((chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?, id.parse().ok()?))
}

/// The caller's payments with their refunds, newest first, cursor-paginated.
#[utoipa::path(get, path = "/v1/payments/history", tag = "payments", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,16}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page", body = HistoryDto)))]
pub async fn history(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "from 1 to 100"));
    }
    let cursor = match &query.cursor {
        Some(c) => Some(
            parse_cursor(c).ok_or_else(|| ApiError::invalid_field("cursor", "not a cursor from a previous page"))?,
        ),
        None => None,
    };
    let rows = payments::history(&state, user.id.into(), limit + 1, cursor.map(|(at, id)| (at, id.into()))).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<TransactionRow> = rows.into_iter().take(usize::try_from(limit).unwrap_or(20)).collect();
    let next_cursor =
        if more { items.last().map(|t| format!("{}_{}", t.created_at.timestamp_micros(), t.id)) } else { None };
    Ok(ok(HistoryDto { items: with_refunds(&state, items).await?, next_cursor }, "payments"))
}

/// One payment (owner or admin).
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "The payment", body = TransactionDto),
        (status = 404, description = "`payment_not_found` (also another user's)", body = billing_http::error::ErrorEnvelope)))]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let row = payments::get(&state, user.id.into(), user.is_admin(), id.into_inner().into()).await?;
    let mut dto = with_refunds(&state, vec![row]).await?;
    Ok(ok(dto.pop(), "payment"))
}
