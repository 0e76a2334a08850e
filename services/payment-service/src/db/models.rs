//! Rows as stored.

use billing_domain::{
    Currency, InvoiceId, PaymentMethodId, RefundId, RefundStatus, SubscriptionId, TransactionId, TransactionStatus,
    UserId,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

use super::schema::{payment_methods, refunds, transactions, webhook_deliveries};

/// A payment attempt.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = transactions, check_for_backend(diesel::pg::Pg))]
pub struct TransactionRow {
    pub id: TransactionId,
    pub user_id: UserId,
    pub subscription_id: Option<SubscriptionId>,
    pub invoice_id: InvoiceId,
    pub amount: Decimal,
    pub currency: Currency,
    pub status: TransactionStatus,
    pub gateway_reference: Option<String>,
    pub decline_code: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub payment_method_id: Option<PaymentMethodId>,
    pub refunded_amount: Decimal,
    /// Made by the subscription service without the customer present (renewals, dunning, conversions).
    pub off_session: bool,
    /// The customer asked to keep the card once the charge succeeds.
    pub save_card: bool,
    /// The gateway's idempotency key: asking again with it never charges twice.
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
}

/// A new pending attempt.
#[derive(Debug, Insertable)]
#[diesel(table_name = transactions)]
pub struct NewTransaction<'a> {
    pub id: TransactionId,
    pub user_id: UserId,
    pub subscription_id: Option<SubscriptionId>,
    pub invoice_id: InvoiceId,
    pub amount: Decimal,
    pub currency: Currency,
    pub status: TransactionStatus,
    pub off_session: bool,
    pub idempotency_key: &'a str,
    pub card_brand: &'a str,
    pub card_last4: &'a str,
    pub save_card: bool,
}

/// A refund.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refunds, check_for_backend(diesel::pg::Pg))]
pub struct RefundRow {
    pub id: RefundId,
    pub transaction_id: TransactionId,
    pub user_id: UserId,
    pub amount: Decimal,
    pub currency: Currency,
    pub status: RefundStatus,
    pub reason: Option<String>,
    pub gateway_reference: Option<String>,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    /// End the subscription at once when the refund succeeds.
    pub cancel_subscription: bool,
}

/// A new pending refund.
#[derive(Debug, Insertable)]
#[diesel(table_name = refunds)]
pub struct NewRefund<'a> {
    pub id: RefundId,
    pub transaction_id: TransactionId,
    pub user_id: UserId,
    pub amount: Decimal,
    pub currency: Currency,
    pub status: RefundStatus,
    pub reason: Option<&'a str>,
    pub cancel_subscription: bool,
    pub idempotency_key: &'a str,
}

/// A saved method as its owner sees it (the gateway token stays inside this service).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payment_methods, check_for_backend(diesel::pg::Pg))]
pub struct MethodRow {
    pub id: PaymentMethodId,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub cardholder_name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

/// A method as a charge uses it: whose it is and the gateway's token for it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payment_methods, check_for_backend(diesel::pg::Pg))]
pub struct ChargeableMethod {
    pub user_id: UserId,
    pub gateway_token: String,
    pub brand: String,
    pub last4: String,
}

/// A new saved card.
#[derive(Debug, Insertable)]
#[diesel(table_name = payment_methods)]
pub struct NewMethod<'a> {
    pub id: PaymentMethodId,
    pub user_id: UserId,
    pub gateway_token: &'a str,
    pub brand: &'a str,
    pub last4: &'a str,
    pub exp_month: i32,
    pub exp_year: i32,
    pub cardholder_name: &'a str,
    pub is_default: bool,
}

/// One attempt to deliver a webhook.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub target_url: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub delivered: bool,
    pub created_at: DateTime<Utc>,
}

/// The record of a delivery attempt.
#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewDelivery<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub target_url: &'a str,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<&'a str>,
    pub delivered: bool,
    pub payload: Value,
}
