//! Request and response bodies. Write bodies are closed (`deny_unknown_fields`): no mass assignment.

use std::collections::BTreeMap;

use billing_domain::{AmountText, Currency, HistoryEntry, InvoiceKind, InvoiceStatus, LineKind, SubscriptionStatus};
use billing_http::rfc3339;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::services::auth::{Tokens, UserRow};
use crate::services::invoices::{InvoiceLineRow, InvoiceRow, InvoiceView};
use crate::services::plans::Plan;
use crate::services::subscriptions::{SubscriptionEventRow, SubscriptionRow};

fn ts(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(rfc3339)
}

/// Renders a stored amount with its currency's digits.
pub fn amount(value: Decimal, currency: Currency) -> String {
    currency.render(value)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8–128 characters with a letter and a digit; the 10,000 most common passwords are refused.
    #[schema(
        example = "correct horse 42",
        min_length = 8,
        max_length = 128,
        pattern = r"[A-Za-z][\s\S]*[0-9]|[0-9][\s\S]*[A-Za-z]"
    )]
    pub password: String,
    /// 1–100 characters, not only spaces.
    #[schema(example = "Ada", min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: Option<String>,
    /// 1–100 characters, not only spaces.
    #[schema(example = "Lovelace", min_length = 1, max_length = 100, pattern = r"\S")]
    pub last_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "correct horse 42")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(value_type = String, example = "user", pattern = "^(user|admin)$")]
    pub role: billing_auth::Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensDto {
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    #[schema(example = 3600)]
    pub expires_in: u64,
    pub refresh_token: String,
    pub user_id: Uuid,
    pub email: String,
}

impl From<Tokens> for TokensDto {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            user_id: t.user_id.into(),
            email: t.email,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[schema(example = "user")]
    pub role: String,
    pub created_at: String,
}

impl From<UserRow> for UserDto {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id.into(),
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            role: u.role,
            created_at: rfc3339(u.created_at),
        }
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineDto {
    #[schema(value_type = String, example = "subscription")]
    pub kind: LineKind,
    pub description: String,
    pub quantity: i32,
    #[schema(example = "29.99")]
    pub unit_amount: String,
    #[schema(example = "29.99")]
    pub amount: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
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
