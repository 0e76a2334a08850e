//! `/v1/entitlements`: what the current plan grants, feature by feature.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use billing_http::{ApiError, AuthUser, ok};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::services::usage;
use crate::state::AppState;

/// One feature of the current plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementDto {
    /// False only for a feature the plan turns off (`"audit_log": false`).
    pub enabled: bool,
    /// The hard limit per period, if any.
    pub limit: Option<i64>,
    /// Units used this period (counted features).
    pub used: Option<i64>,
    /// `limit - used`, when limited.
    pub remaining: Option<i64>,
    /// How usage is billed in arrears: `per_unit`, `graduated`, `volume` or `package`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<String>,
    /// The plan's definition of an informational feature that is not a switch (`{"limit": "1GB"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementsDto {
    pub plan_id: i32,
    pub features: BTreeMap<String, EntitlementDto>,
}

/// Every feature of the current plan: switches (`"sso": true`), limits, billed usage, with this period's usage.
#[utoipa::path(get, path = "/v1/entitlements/me", tag = "usage", security(("bearer" = [])),
    responses(
        (status = 200, description = "Entitlements", body = EntitlementsDto),
        (status = 403, description = "`no_active_subscription`", body = billing_http::error::ErrorEnvelope)))]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let (plan_id, features) = usage::entitlements(&state, user.id.into()).await?;
    let features = features
        .into_iter()
        .map(|(name, e)| {
            let remaining = e.limit.zip(e.used).map(|(limit, used)| (limit - used).max(0));
            let dto = EntitlementDto {
                enabled: e.enabled,
                limit: e.limit,
                used: e.used,
                remaining,
                billing: e.billing.map(str::to_owned),
                value: e.value,
            };
            (name, dto)
        })
        .collect();
    Ok(ok(EntitlementsDto { plan_id, features }, "entitlements"))
}
