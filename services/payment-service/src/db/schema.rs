//! Tables of `billing_payment`, as the migrations under `migrations/payment/` create them.

diesel::table! {
    payment_methods (id) {
        id -> Uuid,
        user_id -> Uuid,
        gateway_token -> Text,
        brand -> Text,
        last4 -> Bpchar,
        exp_month -> Int4,
        exp_year -> Int4,
        cardholder_name -> Text,
        is_default -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    transactions (id) {
        id -> Uuid,
        user_id -> Uuid,
        subscription_id -> Nullable<Uuid>,
        invoice_id -> Uuid,
        amount -> Numeric,
        currency -> Bpchar,
        status -> Text,
        gateway_reference -> Nullable<Text>,
        decline_code -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        card_brand -> Nullable<Text>,
        card_last4 -> Nullable<Bpchar>,
        payment_method_id -> Nullable<Uuid>,
        idempotency_key -> Text,
        refunded_amount -> Numeric,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        off_session -> Bool,
        save_card -> Bool,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Uuid,
        key -> Text,
        request_hash -> Bytea,
        status -> Text,
        response_status -> Nullable<Int4>,
        response_body -> Nullable<Bytea>,
        locked_until -> Timestamptz,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Int8,
        event_id -> Text,
        event_type -> Text,
        target_url -> Text,
        attempt -> Int4,
        status_code -> Nullable<Int4>,
        latency_ms -> Int4,
        error -> Nullable<Text>,
        delivered -> Bool,
        payload -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refunds (id) {
        id -> Uuid,
        transaction_id -> Uuid,
        user_id -> Uuid,
        amount -> Numeric,
        currency -> Bpchar,
        status -> Text,
        reason -> Nullable<Text>,
        gateway_reference -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        idempotency_key -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        cancel_subscription -> Bool,
    }
}

diesel::table! {
    gateway_events (event_id) {
        event_id -> Text,
        event_type -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(transactions -> payment_methods (payment_method_id));
diesel::joinable!(refunds -> transactions (transaction_id));
diesel::allow_tables_to_appear_in_same_query!(
    payment_methods,
    transactions,
    refunds,
    idempotency_keys,
    webhook_deliveries
);
