//! `/v1/plans` (public catalog) and `/v1/admin/plans` (administrators).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use billing_domain::{AmountText, Currency};
use billing_domain::{BillingCycle, PlanFeatures};
use billing_http::openapi::{alternatives, amounts_by_currency, refine_schema};
use billing_http::{AdminUser, ApiError, Json, created, ok};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::ServiceError;
use crate::services::plans;
use crate::services::plans::Plan;
use crate::services::plans::PlanChanges;
use crate::state::AppState;

/// The active plans.
#[utoipa::path(get, path = "/v1/plans", tag = "plans",
    responses((status = 200, description = "The public catalog", body = Vec<PlanDto>)))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let plans = plans::active_plans(&state).await?;
    Ok(ok(plans.iter().map(PlanDto::from).collect::<Vec<_>>(), "plans"))
}

/// One active plan.
#[utoipa::path(get, path = "/v1/plans/{id}", tag = "plans", params(("id" = i32, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The plan", body = PlanDto),
        (status = 404, description = "`plan_not_found`", body = billing_http::error::ErrorEnvelope)))]
pub async fn get(state: web::Data<AppState>, id: web::Path<i32>) -> Result<HttpResponse, ApiError> {
    let plan = plans::active_plan(&state, id.into_inner()).await?;
    Ok(ok(PlanDto::from(&plan), "plan"))
}

/// Validates every given field; the currency is needed to read the prices, so it comes first. `existing_currency`
/// is the plan's (for an update).
fn validate(body: PlanUpdateBody, existing_currency: Option<Currency>) -> Result<PlanChanges, ServiceError> {
    let mut fields = BTreeMap::new();
    let mut changes = PlanChanges::default();
    if let Some(code) = body.code {
        let valid = !code.is_empty()
            && code.len() <= 64
            && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            changes.code = Some(code)
        } else {
            fields.insert("code".into(), "1-64 lower-case letters, digits, _ or -".into());
        }
    }
    if let Some(name) = body.name {
        if name.trim().is_empty() || name.chars().count() > 100 {
            fields.insert("name".into(), "must be 1 to 100 characters".into());
        } else {
            changes.name = Some(name.trim().to_owned())
        }
    }
    if let Some(description) = body.description {
        if description.chars().count() > 1000 {
            fields.insert("description".into(), "at most 1000 characters".into());
        } else {
            changes.description = Some(description)
        }
    }
    let currency = match body.currency {
        Some(code) => match Currency::from_client_code(&code) {
            Some(c) => {
                changes.currency = Some(c);
                Some(c)
            }
            None => {
                fields.insert("currency".into(), format!("unsupported currency {code:?}"));
                None
            }
        },
        None => existing_currency,
    };
    if let Some(price) = body.price {
        match currency.map(|c| price.to_money(c)) {
            // A price under what the processor will charge could never be collected: free, or the minimum.
            Some(Ok(m)) if !m.is_zero() && m.minor() < m.currency().min_charge().minor() => {
                let minimum = m.currency().min_charge();
                fields.insert(
                    "price".into(),
                    format!(
                        "below the minimum charge of {} {}; 0 for a free plan",
                        minimum.amount_string(),
                        minimum.currency().code()
                    ),
                );
            }
            Some(Ok(m)) if !m.is_negative() => changes.price = Some(m.to_decimal()),
            Some(Ok(_)) => {
                fields.insert("price".into(), "must not be negative".into());
            }
            Some(Err(e)) => {
                fields.insert("price".into(), e.to_string());
            }
            None => {}
        }
    } else if changes.currency.is_some() && existing_currency.is_some() {
        fields.insert("price".into(), "give the price again when changing the currency".into());
    }
    match body.per_seat {
        Some(Some(seats)) => {
            match currency.map(|c| seats.unit_amount.to_money(c)) {
                Some(Ok(m)) if !m.is_negative() => changes.seat_price = Some(Some(m.to_decimal())),
                Some(Ok(_)) => {
                    fields.insert("per_seat.unit_amount".into(), "must not be negative".into());
                }
                Some(Err(e)) => {
                    fields.insert("per_seat.unit_amount".into(), e.to_string());
                }
                None => {}
            }
            if (0..=MAX_SEATS).contains(&seats.included_seats) {
                changes.included_seats = Some(Some(seats.included_seats));
            } else {
                fields.insert("per_seat.included_seats".into(), format!("from 0 to {MAX_SEATS}"));
            }
        }
        Some(None) => (changes.seat_price, changes.included_seats) = (Some(None), Some(None)),
        None => {}
    }
    if let Some(cycle) = body.billing_cycle {
        if let Some(cycle) = BillingCycle::parse(&cycle) {
            changes.billing_cycle = Some(cycle)
        } else {
            fields.insert("billing_cycle".into(), "monthly or yearly".into());
        }
    }
    if let Some(days) = body.trial_period_days {
        if (0..=365).contains(&days) {
            changes.trial_period_days = Some(days)
        } else {
            fields.insert("trial_period_days".into(), "from 0 to 365".into());
        }
    }
    changes.is_trial_plan = body.is_trial_plan;
    changes.is_active = body.is_active;
    if let Some(target) = body.converts_to_plan_id {
        changes.converts_to_plan_id = Some(Some(target));
    }
    if let Some(features) = body.features {
        match PlanFeatures::parse(&features) {
            Ok(_) => changes.features = Some(features),
            Err((field, message)) => {
                fields.insert(field, message);
            }
        }
    }
    if fields.is_empty() { Ok(changes) } else { Err(ServiceError::Validation(fields)) }
}

/// Create a plan.
#[utoipa::path(post, path = "/v1/admin/plans", tag = "admin", request_body = PlanCreateBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = PlanDto),
        (status = 403, description = "Not an administrator", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`plan_not_found`: `converts_to_plan_id` names no plan", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`plan_code_taken`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = billing_http::error::ErrorEnvelope)))]
pub async fn create(
    state: web::Data<AppState>,
    _admin: AdminUser,
    body: Json<PlanCreateBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let update = PlanUpdateBody {
        code: Some(b.code),
        name: Some(b.name),
        description: Some(b.description.unwrap_or_default()),
        price: Some(b.price),
        currency: Some(b.currency),
        billing_cycle: Some(b.billing_cycle),
        trial_period_days: Some(b.trial_period_days.unwrap_or(0)),
        is_trial_plan: Some(b.is_trial_plan.unwrap_or(false)),
        converts_to_plan_id: b.converts_to_plan_id,
        features: Some(b.features.unwrap_or_else(|| serde_json::json!({}))),
        is_active: Some(b.is_active.unwrap_or(true)),
        per_seat: b.per_seat.map(Some),
    };
    let mut changes = validate(update, None)?;
    if changes.is_trial_plan == Some(true) && changes.trial_period_days == Some(0) {
        return Err(ServiceError::invalid("trial_period_days", "a trial plan needs at least one day").into());
    }
    changes.converts_to_plan_id = changes.converts_to_plan_id.or(Some(None));
    let plan = plans::create(&state, changes).await?;
    Ok(created(PlanDto::from(&plan), "plan created"))
}

/// Change any subset of a plan's fields (e.g. `{"features": {...}}` to raise a limit).
#[utoipa::path(put, path = "/v1/admin/plans/{id}", tag = "admin", request_body = PlanUpdateBody, security(("bearer" = [])),
    params(("id" = i32, Path, description = "Plan id")),
    responses(
        (status = 200, description = "Updated", body = PlanDto),
        (status = 403, description = "Not an administrator", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`plan_not_found` (the plan, or the one `converts_to_plan_id` names)", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`plan_code_taken`, or `invalid_state`: a new currency without the plan's seat price again", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = billing_http::error::ErrorEnvelope)))]
pub async fn update(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i32>,
    body: Json<PlanUpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let existing = state.plans.get(&state.infra.db, id).await?.ok_or(ServiceError::PlanNotFound)?;
    let body = body.into_inner();
    // The seat price is in the plan's currency: a new currency needs it again. The document cannot say so (it
    // depends on the plan), so it is a conflict with the plan as it is, not a malformed body.
    if body.currency.is_some() && body.per_seat.is_none() && existing.per_seat.is_some() {
        return Err(ServiceError::InvalidState(format!(
            "the plan prices seats in {}: give per_seat again with the new currency (or null to remove it)",
            existing.price.currency().code()
        ))
        .into());
    }
    let changes = validate(body, Some(existing.price.currency()))?;
    if changes == PlanChanges::default() {
        return Err(ServiceError::invalid("body", "give at least one field to change").into());
    }
    let plan = plans::update(&state, id, changes).await?;
    Ok(ok(PlanDto::from(&plan), "plan updated"))
}

/// Deactivate a plan: it leaves the catalog; existing subscriptions keep it. Plans are never hard-deleted.
#[utoipa::path(delete, path = "/v1/admin/plans/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i32, Path, description = "Plan id")),
    responses(
        (status = 200, description = "Deactivated", body = PlanDto),
        (status = 403, description = "Not an administrator", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`plan_not_found`", body = billing_http::error::ErrorEnvelope)))]
pub async fn deactivate(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let plan = plans::deactivate(&state, id.into_inner()).await?;
    Ok(ok(PlanDto::from(&plan), "plan deactivated"))
}

/// States in the document the plan bodies' rules between fields, which the derive cannot: the price's digits and
/// minimum depend on the currency, a trial plan needs trial days, and feature names and limits have a form.
pub fn document_rules(doc: &mut utoipa::openapi::OpenApi) {
    let mut prices = amounts_by_currency("price", Currency::all().iter().map(|c| (c.code(), c.amount_pattern(true))));
    // A seat price is read in the plan's currency too: the same digits as the price.
    for alternative in &mut prices {
        let pattern = alternative["properties"]["price"]["pattern"].clone();
        alternative["properties"]["per_seat"] = json!({"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["unit_amount", "included_seats"], "additionalProperties": false,
            "properties": {
                "unit_amount": {"type": "string", "pattern": pattern},
                "included_seats": {"type": "integer", "minimum": 0, "maximum": MAX_SEATS},
            },
        }]});
    }
    refine_schema(doc, "PlanCreateBody", |mut plan| {
        plan["properties"]["features"] = features_schema(true);
        let trial = vec![
            json!({"properties": {"is_trial_plan": {"type": ["boolean", "null"], "enum": [false, null]}}}),
            json!({"required": ["trial_period_days"], "properties": {"trial_period_days": {"minimum": 1}}}),
        ];
        alternatives(&plan, &[prices.clone(), trial])
    });
    refine_schema(doc, "PlanUpdateBody", |mut changes| {
        changes["properties"]["features"] = features_schema(false);
        // A null changes nothing, and a body that changes nothing is refused.
        for property in changes["properties"].as_object_mut().into_iter().flat_map(|p| p.values_mut()) {
            // `get_mut`: indexing would add `"type": null` to a property that has no `type` (an `anyOf`).
            if let Some(types) = property.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
            }
        }
        changes["minProperties"] = json!(1);
        // The document asks for the price and the currency together, so the price can be read in its currency;
        // the service also takes a price alone, in the plan's currency.
        let both = |alt: &Value| {
            let mut alt = alt.clone();
            alt["required"] = json!(["price", "currency"]);
            alt
        };
        // Without the currency, a seat price could not be checked against its digits either: only `null`.
        let mut price = vec![json!({"properties": {"price": null, "currency": null, "per_seat": {"type": "null"}}})];
        price.extend(prices.iter().map(both));
        let trial = vec![
            json!({"required": ["is_trial_plan"], "properties": {"is_trial_plan": {"enum": [false]}}}),
            json!({"required": ["trial_period_days"], "properties": {"trial_period_days": {"minimum": 1}}}),
            json!({"properties": {"is_trial_plan": null, "trial_period_days": null}}),
        ];
        let mut refined = alternatives(&changes, &[price, trial]);
        refined["description"] = json!(
            "Any subset of a plan's fields. The document asks for `price` and `currency` together, so the price \
             can be read in its currency; the service also takes a price alone, in the plan's currency."
        );
        refined
    });
}

/// A plan's `features`: names of 1–64 `[a-z0-9_]`. A definition without `billing` is anything, and its `limit`,
/// when a number, is a whole number ≥ 0 (`null`: unlimited). One with `billing` is a usage price: `per_unit` with
/// `unit_amount`, `graduated` or `volume` with 1–20 `tiers` (ascending `up_to`, the last `null`), or `package`
/// with `package_size` and `package_amount`; `included` free units; no `limit`.
fn features_schema(nullable: bool) -> Value {
    let amount = json!({"type": "string", "pattern": r"^\d{1,12}(\.\d{1,12})?$", "example": "0.0005"});
    let units = |minimum: u64| json!({"type": "integer", "minimum": minimum, "maximum": 9_007_199_254_740_991_u64});
    let priced = |billing: &str, required: &[&str], extra: Value| {
        let mut properties = json!({
            "billing": {"const": billing}, "included": units(0), "limit": {"type": "null"},
        });
        if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), extra) {
            p.extend(extra);
        }
        let mut required: Vec<&str> = required.to_vec();
        required.push("billing");
        json!({"type": "object", "required": required, "properties": properties})
    };
    let tiers = json!({
        "type": "array", "minItems": 1, "maxItems": 20,
        "description": "Ascending `up_to`; only the last tier is open-ended (`null`).",
        "items": {"type": "object", "required": ["up_to", "unit_amount"], "properties": {
            "up_to": {"anyOf": [units(1), {"type": "null"}]}, "unit_amount": amount,
        }},
    });
    json!({
        "type": if nullable { json!(["object", "null"]) } else { json!("object") },
        "description": "`{\"api_calls\": {\"limit\": 1000}, \"storage\": {\"limit\": \"1GB\"}, \"sso\": true}`: an integer \
            limit is metered, `null` unlimited, a `billing` price billed in arrears, anything else informational.",
        "propertyNames": {"pattern": "^[a-z0-9_]{1,64}$"},
        "additionalProperties": {"anyOf": [
            {"not": {"type": "object"}},
            {"type": "object", "not": {"required": ["billing"]}, "properties": {"limit": {"anyOf": [
                {"type": "null"},
                {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_u64},
                {"not": {"type": ["number", "null"]}},
            ]}}},
            priced("per_unit", &["unit_amount"], json!({"unit_amount": amount})),
            priced("graduated", &["tiers"], json!({"tiers": tiers})),
            priced("volume", &["tiers"], json!({"tiers": tiers})),
            priced("package", &["package_size", "package_amount"], json!({"package_size": units(1), "package_amount": amount})),
        ]},
        "example": {"api_calls": {"limit": 20000}, "storage_gb": {"billing": "graduated", "included": 10, "tiers": [
            {"up_to": 100, "unit_amount": "0.10"}, {"up_to": null, "unit_amount": "0.05"}]}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn decimal_prices_are_read_exactly() {
        // 0.70 is not 0.7000000000000001 (its nearest binary float), and is above USD's minimum charge.
        let body = PlanUpdateBody { price: Some(billing_domain::AmountText("0.70".into())), ..Default::default() };
        let changes = validate(body, Currency::from_code("USD")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(changes.price, Some(Decimal::new(70, 2)));
    }

    fn seats(unit_amount: &str, included_seats: i32) -> Option<Option<SeatPriceBody>> {
        Some(Some(SeatPriceBody { unit_amount: billing_domain::AmountText(unit_amount.into()), included_seats }))
    }

    fn refused(body: PlanUpdateBody, existing: Option<Currency>) -> Vec<String> {
        match validate(body, existing) {
            Err(ServiceError::Validation(fields)) => fields.into_keys().collect(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_seat_price_is_read_in_the_plan_currency_and_named_when_wrong() {
        let yen = Currency::from_code("JPY");
        let ok = PlanUpdateBody { per_seat: seats("500", 2), ..Default::default() };
        let changes = validate(ok, yen).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((changes.seat_price, changes.included_seats), (Some(Some(Decimal::new(500, 0))), Some(Some(2))));
        let cents = PlanUpdateBody { per_seat: seats("5.50", 2), ..Default::default() };
        assert_eq!(refused(cents, yen), vec!["per_seat.unit_amount"]);
        let negative = PlanUpdateBody { per_seat: seats("-1", 10_001), ..Default::default() };
        assert_eq!(refused(negative, yen), vec!["per_seat.included_seats", "per_seat.unit_amount"]);
        let removed = PlanUpdateBody { per_seat: Some(None), ..Default::default() };
        let changes = validate(removed, yen).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((changes.seat_price, changes.included_seats), (Some(None), Some(None)));
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanDto {
    #[schema(example = 2)]
    pub id: i32,
    #[schema(example = "basic")]
    pub code: String,
    #[schema(example = "Basic")]
    pub name: String,
    pub description: String,
    /// The price per period, with the currency's digits.
    #[schema(example = "29.99")]
    pub price: String,
    #[schema(example = "USD")]
    pub currency: String,
    #[schema(example = "monthly")]
    pub billing_cycle: String,
    pub trial_period_days: u32,
    pub is_trial_plan: bool,
    pub converts_to_plan_id: Option<i32>,
    /// `{"api_calls": {"limit": 1000}, "storage": {"limit": "1GB"}, "sso": true}`: an integer limit is metered,
    /// `null` unlimited, anything else informational.
    #[schema(value_type = Object)]
    pub features: Value,
    pub is_active: bool,
    /// Set when `price` is a base fee and seats above `included_seats` cost `unit_amount` each; `null` when
    /// `price` is per seat.
    pub per_seat: Option<SeatPriceDto>,
}

/// A price per seat above those included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeatPriceDto {
    #[schema(example = "10.00")]
    pub unit_amount: String,
    #[schema(example = 3)]
    pub included_seats: u32,
}

/// A seat price as a plan body gives it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatPriceBody {
    /// Per period, for each seat above `included_seats`: ≥ 0 with the currency's digits.
    #[schema(value_type = String, example = "10.00")]
    pub unit_amount: AmountText,
    /// Seats the base price covers: 0–10000.
    #[schema(minimum = 0, maximum = 10000, example = 3)]
    #[serde(deserialize_with = "billing_http::extract::whole::deserialize")]
    pub included_seats: i32,
}

/// Seats a plan may include, as many as a subscription may have.
const MAX_SEATS: i32 = 10_000;

/// `Some(None)` for an explicit `null` (remove), `None` when absent.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl From<&Plan> for PlanDto {
    fn from(p: &Plan) -> Self {
        Self {
            id: p.id,
            code: p.code.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            price: p.price.amount_string(),
            currency: p.price.currency().code().to_owned(),
            billing_cycle: p.cycle.as_str().to_owned(),
            trial_period_days: p.trial_period_days,
            is_trial_plan: p.is_trial_plan,
            converts_to_plan_id: p.converts_to_plan_id,
            features: p.features_json.clone(),
            is_active: p.is_active,
            per_seat: p
                .per_seat
                .map(|s| SeatPriceDto { unit_amount: s.unit_amount.amount_string(), included_seats: s.included_seats }),
        }
    }
}

/// A new plan (admin).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanCreateBody {
    /// 1–64 lower-case letters, digits, `_` or `-`; unique.
    #[schema(example = "team", pattern = "^[a-z0-9_-]{1,64}$")]
    pub code: String,
    /// 1–100 characters, not only spaces.
    #[schema(example = "Team", min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// A JSON number or string, read exactly, with at most the currency's digits: 0 (free) or at least the
    /// currency's minimum charge (USD 0.50, JPY 50 …).
    #[schema(value_type = String, example = "49.00")]
    pub price: AmountText,
    /// ISO 4217, any case.
    #[schema(example = "USD", pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    #[schema(example = "monthly", pattern = "^(monthly|yearly)$")]
    pub billing_cycle: String,
    /// 0–365; a trial plan has at least 1.
    #[schema(minimum = 0, maximum = 365)]
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub trial_period_days: Option<i32>,
    pub is_trial_plan: Option<bool>,
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub converts_to_plan_id: Option<i32>,
    #[schema(value_type = Option<Object>)]
    pub features: Option<Value>,
    pub is_active: Option<bool>,
    /// A base fee (`price`) plus a price for each seat above those included; absent: `price` is per seat.
    pub per_seat: Option<SeatPriceBody>,
}

/// A partial update of a plan (admin): any subset of the fields.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdateBody {
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub code: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// As for a new plan, in the plan's currency (or the new `currency`, which needs the price again).
    #[schema(value_type = Option<String>, example = "59.00")]
    pub price: Option<AmountText>,
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    #[schema(pattern = "^(monthly|yearly)$")]
    pub billing_cycle: Option<String>,
    #[schema(minimum = 0, maximum = 365)]
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub trial_period_days: Option<i32>,
    pub is_trial_plan: Option<bool>,
    #[serde(default, deserialize_with = "billing_http::extract::whole::option::deserialize")]
    pub converts_to_plan_id: Option<i32>,
    #[schema(value_type = Option<Object>, example = json!({"api_calls": {"limit": 20000}}))]
    pub features: Option<Value>,
    pub is_active: Option<bool>,
    /// A new seat price (in the plan's currency, or the new `currency`, which needs it again); `null` removes
    /// it, making `price` per seat again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SeatPriceBody>)]
    pub per_seat: Option<Option<SeatPriceBody>>,
}
