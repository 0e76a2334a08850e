//! `/v1/usage`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use billing_http::rfc3339;
use billing_http::{ApiError, AuthUser, Json, ok};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::services::usage;
use crate::state::AppState;

fn remaining(limit: Option<i64>, used: i64) -> Option<i64> {
    limit.map(|l| (l - used).max(0))
}

/// Use a metered feature: counted atomically against the plan's limit for the current period.
#[utoipa::path(post, path = "/v1/usage/use", tag = "usage", request_body = UseBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "Counted", body = UseDto),
        (status = 403, description = "`feature_not_in_plan` or `no_active_subscription`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = billing_http::error::ErrorEnvelope),
        (status = 429, description = "`usage_limit_exceeded`: nothing consumed; details name the limit and reset time", body = billing_http::error::ErrorEnvelope)))]
pub async fn use_feature(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<UseBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut fields = BTreeMap::new();
    let name_ok = !body.feature_name.is_empty()
        && body.feature_name.len() <= 64
        && body.feature_name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        fields.insert("feature_name".to_owned(), "1-64 lower-case letters, digits or underscores".to_owned());
    }
    let delta = body.delta.unwrap_or(1);
    if !(1..=1_000_000).contains(&delta) {
        fields.insert("delta".to_owned(), "an integer from 1 to 1000000".to_owned());
    }
    if let Some(key) = &body.idempotency_key
        && !(1..=255).contains(&key.chars().count())
    {
        fields.insert("idempotency_key".to_owned(), "1 to 255 characters".to_owned());
    }
    if !fields.is_empty() {
        return Err(ServiceError::Validation(fields).into());
    }
    let out =
        usage::use_feature(&state, user.id.into(), &body.feature_name, delta, body.idempotency_key.as_deref()).await?;
    Ok(ok(
        UseDto {
            remaining: remaining(out.limit, out.current_usage),
            feature_name: out.feature,
            current_usage: out.current_usage,
            limit: out.limit,
            reset_at: rfc3339(out.reset_at),
        },
        "usage recorded",
    ))
}

/// Usage of every metered feature in the current period, or in the period starting at `period_start` (an
/// instant as `GET /v1/usage/me` or an invoice's period gave it): `reset_at` is then that period's end.
#[utoipa::path(get, path = "/v1/usage/me", tag = "usage", security(("bearer" = [])), params(UsagePeriodQuery),
    responses(
        (status = 200, description = "Usage", body = UsageMeDto),
        (status = 403, description = "`no_active_subscription` or `subscription_paused` (current period)", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`period_not_found`: no period of the caller's starts at `period_start`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: `period_start` is not an RFC 3339 instant", body = billing_http::error::ErrorEnvelope)))]
pub async fn me(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<UsagePeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let u = match query.into_inner().period_start {
        None => usage::current(&state, user.id.into()).await?,
        Some(text) => {
            let start = chrono::DateTime::parse_from_rfc3339(text.trim())
                .map_err(|_| ServiceError::invalid("period_start", "an RFC 3339 instant, e.g. 2026-11-01T00:00:00Z"))?
                .with_timezone(&chrono::Utc);
            usage::of_period(&state, user.id.into(), start).await?
        }
    };
    let features = u
        .features
        .iter()
        .map(|f| FeatureUsageDto {
            feature_name: f.feature.clone(),
            used: f.used,
            limit: f.limit,
            remaining: remaining(f.limit, f.used),
        })
        .collect();
    Ok(ok(
        UsageMeDto {
            subscription_id: u.subscription_id.into(),
            plan_id: u.plan_id,
            period_start: rfc3339(u.period_start),
            reset_at: rfc3339(u.reset_at),
            features,
        },
        "usage",
    ))
}

/// The limits of the current plan with what is used and what remains.
#[utoipa::path(get, path = "/v1/usage/limits", tag = "usage", security(("bearer" = [])),
    responses(
        (status = 200, description = "Limits", body = LimitsDto),
        (status = 403, description = "`no_active_subscription`", body = billing_http::error::ErrorEnvelope)))]
pub async fn limits(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let u = usage::current(&state, user.id.into()).await?;
    let limits = usage::limits_map(&u)
        .into_iter()
        .map(|(name, (limit, used))| (name, LimitDto { limit, used, remaining: remaining(limit, used) }))
        .collect();
    Ok(ok(
        LimitsDto { plan_id: u.plan_id, period_start: rfc3339(u.period_start), reset_at: rfc3339(u.reset_at), limits },
        "limits",
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsagePeriodQuery {
    /// The start of the period, an RFC 3339 instant (the pattern is a subset every client can generate valid
    /// instants from; any RFC 3339 instant is read); the current period when omitted.
    #[param(
        example = "2026-11-01T00:00:00Z",
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
    )]
    pub period_start: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseBody {
    #[schema(example = "api_calls", pattern = "^[a-z0-9_]{1,64}$")]
    pub feature_name: String,
    /// Units to use (default 1).
    #[schema(example = 1, minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub delta: Option<i64>,
    /// A repeated key counts once and returns the first answer.
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UseDto {
    #[schema(example = "api_calls")]
    pub feature_name: String,
    #[schema(example = 1)]
    pub current_usage: i64,
    /// `null` when unlimited.
    #[schema(example = 1000)]
    pub limit: Option<i64>,
    #[schema(example = 999)]
    pub remaining: Option<i64>,
    pub reset_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureUsageDto {
    pub feature_name: String,
    pub used: i64,
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageMeDto {
    pub subscription_id: Uuid,
    pub plan_id: i32,
    pub period_start: String,
    pub reset_at: String,
    pub features: Vec<FeatureUsageDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitDto {
    pub limit: Option<i64>,
    pub used: i64,
    pub remaining: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsDto {
    pub plan_id: i32,
    pub period_start: String,
    pub reset_at: String,
    pub limits: BTreeMap<String, LimitDto>,
}
