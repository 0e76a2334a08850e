//! Rows as stored.

use billing_domain::{
    BillingCycle, Currency, HistoryEntry, InvoiceId, InvoiceKind, InvoiceStatus, LineKind, RefundId, SubscriptionId,
    SubscriptionStatus, TransactionId, UserId,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub role: &'a str,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub user_id: UserId,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub user_id: UserId,
    pub family_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = plans, check_for_backend(diesel::pg::Pg))]
pub struct PlanRow {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub description: String,
    pub price: Decimal,
    pub currency: Currency,
    pub billing_cycle: BillingCycle,
    pub trial_period_days: i32,
    pub is_trial_plan: bool,
    pub converts_to_plan_id: Option<i32>,
    pub features: Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub seat_price: Option<Decimal>,
    pub included_seats: Option<i32>,
}

#[derive(Debug, Insertable, AsChangeset, Default, PartialEq)]
#[diesel(table_name = plans)]
pub struct PlanChanges {
    pub code: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Decimal>,
    pub currency: Option<Currency>,
    pub billing_cycle: Option<BillingCycle>,
    pub trial_period_days: Option<i32>,
    pub is_trial_plan: Option<bool>,
    pub converts_to_plan_id: Option<Option<i32>>,
    pub features: Option<Value>,
    pub is_active: Option<bool>,
    pub seat_price: Option<Option<Decimal>>,
    pub included_seats: Option<Option<i32>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionRow {
    pub id: SubscriptionId,
    pub user_id: UserId,
    pub plan_id: i32,
    pub quantity: i32,
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub billing_anchor: Option<DateTime<Utc>>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub pending_plan_id: Option<i32>,
    pub pending_quantity: Option<i32>,
    pub payment_method_id: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A pause scheduled for this instant (the period end).
    pub pause_at: Option<DateTime<Utc>>,
    /// When the subscription was paused (set while `paused`).
    pub paused_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = subscriptions)]
pub struct NewSubscription {
    pub id: SubscriptionId,
    pub user_id: UserId,
    pub plan_id: i32,
    pub quantity: i32,
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub billing_anchor: Option<DateTime<Utc>>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
}

/// Columns a transition may change; `None` leaves a column as it is.
#[derive(Debug, AsChangeset, Default)]
#[diesel(table_name = subscriptions)]
pub struct SubscriptionChanges {
    pub plan_id: Option<i32>,
    pub quantity: Option<i32>,
    pub status: Option<SubscriptionStatus>,
    pub billing_anchor: Option<Option<DateTime<Utc>>>,
    pub current_period_start: Option<Option<DateTime<Utc>>>,
    pub current_period_end: Option<Option<DateTime<Utc>>>,
    pub cancel_at_period_end: Option<bool>,
    pub canceled_at: Option<Option<DateTime<Utc>>>,
    pub cancel_reason: Option<Option<String>>,
    pub ended_at: Option<Option<DateTime<Utc>>>,
    pub pending_plan_id: Option<Option<i32>>,
    pub pending_quantity: Option<Option<i32>>,
    pub pause_at: Option<Option<DateTime<Utc>>>,
    pub paused_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = subscription_events)]
pub struct NewSubscriptionEvent {
    pub subscription_id: SubscriptionId,
    pub event_type: HistoryEntry,
    pub from_status: Option<SubscriptionStatus>,
    pub to_status: SubscriptionStatus,
    pub data: Value,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscription_events, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionEventRow {
    pub id: i64,
    pub subscription_id: SubscriptionId,
    pub event_type: HistoryEntry,
    pub from_status: Option<SubscriptionStatus>,
    pub to_status: SubscriptionStatus,
    pub data: Value,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = invoices, check_for_backend(diesel::pg::Pg))]
pub struct InvoiceRow {
    pub id: InvoiceId,
    pub user_id: UserId,
    pub subscription_id: Option<SubscriptionId>,
    pub number: Option<String>,
    pub status: InvoiceStatus,
    pub kind: InvoiceKind,
    pub currency: Currency,
    pub subtotal: Decimal,
    pub total: Decimal,
    pub amount_due: Decimal,
    pub amount_paid: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paid_by_transaction_id: Option<TransactionId>,
    /// Charge attempts made so far (dunning numbers them).
    pub attempt_count: i32,
    /// When dunning tries again; `None` while an attempt is in flight or when no retry is planned.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_decline_code: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = invoices)]
pub struct NewInvoice {
    pub id: InvoiceId,
    pub user_id: UserId,
    pub subscription_id: Option<SubscriptionId>,
    pub status: InvoiceStatus,
    pub kind: InvoiceKind,
    pub currency: Currency,
    pub subtotal: Decimal,
    pub total: Decimal,
    pub amount_due: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
}

/// A credit note: a refund of a paid invoice, as a document of its own.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = credit_notes, check_for_backend(diesel::pg::Pg))]
pub struct CreditNoteRow {
    pub id: Uuid,
    pub number: String,
    pub invoice_id: InvoiceId,
    pub refund_id: RefundId,
    pub transaction_id: TransactionId,
    pub amount: Decimal,
    pub currency: Currency,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A proration line waiting for the subscription's next invoice.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pending_invoice_items, check_for_backend(diesel::pg::Pg))]
pub struct PendingItemRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub subscription_id: SubscriptionId,
    pub kind: LineKind,
    pub description: String,
    pub quantity: i64,
    pub unit_amount: Decimal,
    pub amount: Decimal,
    pub currency: Currency,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub feature: Option<String>,
    pub tier: Option<i32>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invoice_lines, check_for_backend(diesel::pg::Pg))]
pub struct InvoiceLineRow {
    pub invoice_id: InvoiceId,
    pub position: i32,
    pub kind: LineKind,
    pub description: String,
    pub quantity: i64,
    pub unit_amount: Decimal,
    pub amount: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// The metered feature of a usage line.
    pub feature: Option<String>,
    /// The tier (from 1) a usage line was priced at.
    pub tier: Option<i32>,
}
