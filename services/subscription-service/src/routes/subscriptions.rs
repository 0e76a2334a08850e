//! `/v1/subscriptions`.

use actix_web::{HttpRequest, HttpResponse, web};
use billing_domain::{Currency, HistoryEntry, SubscriptionStatus};
use billing_http::rfc3339;
use billing_http::{ApiError, AuthUser, Json, created, ok};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::plans::PlanDto;
use super::{amount, ts};
use crate::error::ServiceError;
use crate::services::pause::{self, PauseAt};
use crate::services::plans::Plan;
use crate::services::subscriptions;
use crate::services::subscriptions::{SubscriptionEventRow, SubscriptionRow};
use crate::state::AppState;

async fn dto(state: &AppState, row: SubscriptionRow) -> Result<SubscriptionDto, ServiceError> {
    let plan = state.plans.get(&state.infra.db, row.plan_id).await?;
    Ok(SubscriptionDto::new(row, plan.as_ref()))
}

/// Subscribe to a paid plan: the subscription is `pending` until its first invoice is paid.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", request_body = CreateSubscriptionBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Pending, with the invoice to pay", body = CreatedSubscriptionDto),
        (status = 404, description = "`plan_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`already_subscribed`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed` (e.g. a trial plan)", body = billing_http::error::ErrorEnvelope)))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<CreateSubscriptionBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let made = subscriptions::create_paid(&state, user.id.into(), body.plan_id, body.quantity.unwrap_or(1)).await?;
    let dto = CreatedSubscriptionDto {
        id: made.subscription.id.into(),
        status: made.subscription.status,
        plan: PlanDto::from(&made.plan),
        quantity: made.subscription.quantity,
        payment_required: true,
        amount: amount(made.invoice.amount_due, made.invoice.currency),
        currency: made.invoice.currency,
        invoice_id: made.invoice.id.into(),
        invoice_number: made.invoice.number.clone(),
    };
    Ok(created(dto, "subscription created; pay its invoice to activate it"))
}

/// Start the one free trial a user gets: `trial` at once, no card.
#[utoipa::path(post, path = "/v1/subscriptions/trial", tag = "subscriptions", request_body = TrialBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Trial started", body = TrialDto),
        (status = 404, description = "`plan_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`trial_already_used` or `already_subscribed`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "Not a trial plan", body = billing_http::error::ErrorEnvelope)))]
pub async fn create_trial(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<TrialBody>,
) -> Result<HttpResponse, ApiError> {
    let (row, plan) = subscriptions::create_trial(&state, user.id.into(), body.into_inner().trial_plan_id.0).await?;
    let dto = TrialDto {
        id: row.id.into(),
        user_id: row.user_id.into(),
        plan_id: row.plan_id,
        status: row.status,
        start_date: row.trial_start.map(billing_http::rfc3339),
        end_date: row.trial_end.map(billing_http::rfc3339),
        plan: TrialPlanDto { name: plan.name, features: plan.features_json },
    };
    Ok(created(dto, "trial started"))
}

/// The caller's subscriptions, newest first.
#[utoipa::path(get, path = "/v1/subscriptions/me", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 200, description = "Subscriptions", body = Vec<SubscriptionDto>)))]
pub async fn list_mine(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let rows = subscriptions::list_mine(&state, user.id.into()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        out.push(dto(&state, row.clone()).await?);
    }
    Ok(ok(out, "subscriptions"))
}

/// One subscription (owner or admin).
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionDto),
        (status = 404, description = "`subscription_not_found` (also for another user's)", body = billing_http::error::ErrorEnvelope)))]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let row = subscriptions::get(&state, user, id.into_inner().into()).await?;
    Ok(ok(dto(&state, row).await?, "subscription"))
}

/// The version in `If-Match` (`3` or `"3"`); a malformed one is a 422.
fn if_match(req: &HttpRequest) -> Result<Option<i32>, ServiceError> {
    let Some(value) = req.headers().get(actix_web::http::header::IF_MATCH) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| ServiceError::invalid("If-Match", "the subscription version to change, e.g. \"3\""))
}

/// Change plan or seats. An upgrade applies now with a proration invoice; a downgrade waits for the period end.
/// Send `If-Match: <version>` to change only the version you read (409 `concurrent_update` otherwise).
#[utoipa::path(put, path = "/v1/subscriptions/{id}", tag = "subscriptions", request_body = ChangeSubscriptionBody, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id"), ChangeQuery,
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on", pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#)),
    responses(
        (status = 200, description = "Changed or scheduled (or, with `preview=true`, what would happen)", body = ChangeDto),
        (status = 404, description = "`subscription_not_found` or `plan_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`invalid_state` or `concurrent_update`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = billing_http::error::ErrorEnvelope)))]
pub async fn change(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    query: web::Query<ChangeQuery>,
    body: Json<ChangeSubscriptionBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let version = if_match(&req)?;
    let preview = query.preview.unwrap_or(false);
    let changed =
        subscriptions::change(&state, user, id.into_inner().into(), body.plan_id, body.quantity, version, preview)
            .await?;
    let effective_at = if changed.scheduled {
        changed.subscription.current_period_end.map(billing_http::rfc3339)
    } else {
        Some(billing_http::rfc3339(state.now()))
    };
    let out = ChangeDto {
        proration: changed.proration.map(|p| ProrationDto {
            credit: p.credit.amount_string(),
            charge: p.charge.amount_string(),
            net: p.net.amount_string(),
            currency: p.net.currency().code().to_owned(),
            carried_to_next_invoice: changed.carried,
        }),
        invoice_id: changed.invoice.map(|i| i.id.into()),
        scheduled: changed.scheduled,
        effective_at,
        subscription: dto(&state, changed.subscription).await?,
        preview: changed.preview.is_some(),
        invoice: changed.preview.flatten().map(super::invoices::draft_dto),
    };
    let message = match (out.preview, out.scheduled) {
        (true, _) => "what the change would do (nothing changed)",
        (false, true) => "plan change scheduled for the period end",
        (false, false) => "plan changed",
    };
    Ok(ok(out, message))
}

/// Cancel at the period end (default for active and past-due), or now with `?immediately=true` (always now for
/// trials and pending subscriptions).
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id"), ("immediately" = Option<bool>, Query, description = "End now")),
    responses(
        (status = 200, description = "Canceled or scheduled to cancel", body = SubscriptionDto),
        (status = 404, description = "`subscription_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`invalid_state` (already canceled or expired)", body = billing_http::error::ErrorEnvelope)))]
pub async fn cancel(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<CancelQuery>,
) -> Result<HttpResponse, ApiError> {
    let row = subscriptions::cancel(&state, user, id.into_inner().into(), query.immediately.unwrap_or(false)).await?;
    Ok(ok(dto(&state, row).await?, "subscription canceled"))
}

/// Undo a scheduled cancellation before the period ends.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/reactivate", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "Reactivated", body = SubscriptionDto),
        (status = 404, description = "`subscription_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`invalid_state`: nothing to undo", body = billing_http::error::ErrorEnvelope)))]
pub async fn reactivate(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let row = subscriptions::reactivate(&state, user, id.into_inner().into()).await?;
    Ok(ok(dto(&state, row).await?, "subscription reactivated"))
}

/// Pause an active subscription now, or at its period end (the default). While paused nothing is invoiced or
/// charged and usage is refused (403 `subscription_paused`). Pausing now gives up the rest of the period (nothing
/// is refunded) and bills the usage counted so far.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/pause", tag = "subscriptions", request_body = Option<PauseBody>,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "Paused, or `pause_at` set", body = SubscriptionDto),
        (status = 404, description = "`subscription_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`invalid_state`: not active, ending at its period end, or its renewal under way", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = billing_http::error::ErrorEnvelope)))]
pub async fn pause(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The body is optional; when sent, it is read as strictly as any other.
    let text = body.trim_ascii();
    let body: PauseBody = if text.is_empty() || text == b"null" {
        PauseBody { at: None }
    } else {
        billing_http::extract::parse_json_request(&req, &body)?
    };
    let at = match body.at.as_deref() {
        None | Some("period_end") => PauseAt::PeriodEnd,
        Some("now") => PauseAt::Now,
        Some(_) => return Err(ServiceError::invalid("at", "now or period_end").into()),
    };
    let paused = pause::pause(&state, user, id.into_inner().into(), at).await?;
    let message = if paused.subscription.status == SubscriptionStatus::Paused {
        "subscription paused"
    } else {
        "pause scheduled for the period end"
    };
    Ok(ok(dto(&state, paused.subscription).await?, message))
}

/// Resume a paused subscription: a new period starts now, invoiced and charged like a renewal. On an active
/// subscription with a pause scheduled, undoes the pause.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/resume", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "Active, with a new period (or the scheduled pause undone)", body = SubscriptionDto),
        (status = 404, description = "`subscription_not_found`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`invalid_state`: neither paused nor pausing", body = billing_http::error::ErrorEnvelope)))]
pub async fn resume(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let resumed = pause::resume(&state, user, id.into_inner().into()).await?;
    let message = if resumed.invoice_id.is_some() { "subscription resumed" } else { "scheduled pause undone" };
    Ok(ok(dto(&state, resumed.subscription).await?, message))
}

/// The subscription's history, oldest first (owner or admin).
#[utoipa::path(get, path = "/v1/subscriptions/{id}/events", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "Events", body = Vec<EventDto>),
        (status = 404, description = "`subscription_not_found`", body = billing_http::error::ErrorEnvelope)))]
pub async fn events(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let events = subscriptions::events(&state, user, id.into_inner().into()).await?;
    Ok(ok(events.into_iter().map(EventDto::from).collect::<Vec<_>>(), "subscription events"))
}

/// States in the document that a change names a plan, seats or both (an empty change is refused).
pub fn document_rules(doc: &mut utoipa::openapi::OpenApi) {
    use serde_json::json;
    billing_http::openapi::refine_schema(doc, "ChangeSubscriptionBody", |change| {
        let given = |field: &str| json!({"required": [field], "properties": {field: {"type": "integer"}}});
        billing_http::openapi::alternatives(&change, &[vec![given("plan_id"), given("quantity")]])
    });
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionBody {
    #[schema(example = 2, minimum = 1)]
    #[serde(deserialize_with = "billing_http::extract::whole::deserialize")]
    pub plan_id: i32,
    /// Seats (default 1).
    #[schema(example = 1, minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub quantity: Option<i32>,
}

/// A plan id given as a JSON integer or a numeric string.
#[derive(Debug, Clone, Copy)]
pub struct PlanIdInput(pub i32);

impl<'de> Deserialize<'de> for PlanIdInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i32),
            // `8673.0` is an integer to JSON Schema, so to a client generating from the document.
            Whole(f64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Int(n)) => Ok(Self(n)),
            Ok(Raw::Whole(x)) if x.fract() == 0.0 && x >= f64::from(i32::MIN) && x <= f64::from(i32::MAX) => {
                Ok(Self(x as i32))
            }
            Ok(Raw::Text(s)) => s.trim().parse().map(Self).map_err(|_| serde::de::Error::custom("expected a plan id")),
            Ok(Raw::Whole(_)) | Err(_) => {
                Err(serde::de::Error::custom("expected a plan id (an integer or a numeric string)"))
            }
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialBody {
    /// An integer or a numeric string.
    #[schema(value_type = i32, example = 1, minimum = 1)]
    pub trial_plan_id: PlanIdInput,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSubscriptionBody {
    #[schema(example = 3, minimum = 1)]
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub plan_id: Option<i32>,
    #[schema(example = 2, minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub quantity: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// `now`, or `period_end` (the default).
    #[schema(pattern = "^(now|period_end)$", example = "period_end")]
    pub at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    /// End now instead of at the period end.
    pub immediately: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_id: i32,
    pub plan: Option<PlanDto>,
    pub quantity: i32,
    #[schema(value_type = String, example = "active")]
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub current_period_start: Option<String>,
    pub current_period_end: Option<String>,
    pub trial_start: Option<String>,
    pub trial_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<String>,
    pub cancel_reason: Option<String>,
    pub ended_at: Option<String>,
    pub pending_plan_id: Option<i32>,
    pub pending_quantity: Option<i32>,
    /// A pause scheduled for this instant (the period end).
    pub pause_at: Option<String>,
    /// When the subscription was paused (while `paused`).
    pub paused_at: Option<String>,
    /// Goes up by one with every change; send it as `If-Match` to change only what you read.
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
}

impl SubscriptionDto {
    /// The DTO of `row`, with its plan when known.
    pub fn new(row: SubscriptionRow, plan: Option<&Plan>) -> Self {
        Self {
            id: row.id.into(),
            user_id: row.user_id.into(),
            plan_id: row.plan_id,
            plan: plan.map(PlanDto::from),
            quantity: row.quantity,
            status: row.status,
            is_trial: row.is_trial,
            current_period_start: ts(row.current_period_start),
            current_period_end: ts(row.current_period_end),
            trial_start: ts(row.trial_start),
            trial_end: ts(row.trial_end),
            cancel_at_period_end: row.cancel_at_period_end,
            canceled_at: ts(row.canceled_at),
            cancel_reason: row.cancel_reason,
            ended_at: ts(row.ended_at),
            pending_plan_id: row.pending_plan_id,
            pending_quantity: row.pending_quantity,
            pause_at: ts(row.pause_at),
            paused_at: ts(row.paused_at),
            version: row.version,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSubscriptionDto {
    pub id: Uuid,
    #[schema(value_type = String, example = "pending")]
    pub status: SubscriptionStatus,
    pub plan: PlanDto,
    pub quantity: i32,
    pub payment_required: bool,
    /// What the first invoice asks for.
    #[schema(example = "29.99")]
    pub amount: String,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    pub invoice_id: Uuid,
    #[schema(example = "INV-202611-0001")]
    pub invoice_number: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrialPlanDto {
    pub name: String,
    #[schema(value_type = Object)]
    pub features: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrialDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_id: i32,
    #[schema(value_type = String, example = "trial")]
    pub status: SubscriptionStatus,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub plan: TrialPlanDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProrationDto {
    #[schema(example = "15.00")]
    pub credit: String,
    #[schema(example = "49.50")]
    pub charge: String,
    #[schema(example = "34.50")]
    pub net: String,
    #[schema(example = "USD")]
    pub currency: String,
    /// True when the net (with any lines already waiting) is below the currency's minimum charge: no invoice is
    /// made now, and the proration lines are added to the subscription's next invoice, as Stripe does.
    pub carried_to_next_invoice: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeDto {
    pub subscription: SubscriptionDto,
    /// Present for an upgrade applied now.
    pub proration: Option<ProrationDto>,
    /// The proration invoice, charged to the saved payment method; absent when the proration was carried to the
    /// next invoice.
    pub invoice_id: Option<Uuid>,
    /// True when the change takes effect at the period end (a downgrade).
    pub scheduled: bool,
    pub effective_at: Option<String>,
    /// True for `?preview=true`: nothing was changed, `subscription` is what it would become.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
    /// With `?preview=true`: the invoice the change would issue now (an upgrade's proration), or the next renewal
    /// as it would then be; absent when the proration would be carried to the next invoice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<super::invoices::UpcomingInvoiceDto>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangeQuery {
    /// Show what the change would do, and change nothing.
    pub preview: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub id: i64,
    #[schema(value_type = String, example = "plan_changed")]
    pub event_type: HistoryEntry,
    #[schema(value_type = Option<String>)]
    pub from_status: Option<SubscriptionStatus>,
    #[schema(value_type = String)]
    pub to_status: SubscriptionStatus,
    #[schema(value_type = Object)]
    pub data: Value,
    pub occurred_at: String,
}

impl From<SubscriptionEventRow> for EventDto {
    fn from(e: SubscriptionEventRow) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            from_status: e.from_status,
            to_status: e.to_status,
            data: e.data,
            occurred_at: rfc3339(e.occurred_at),
        }
    }
}
