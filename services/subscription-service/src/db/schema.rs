//! Tables of `billing_subscription`, as the migrations under `migrations/subscription/` create them.

diesel::table! {
    use diesel::sql_types::*;
    use diesel::pg::sql_types::Citext;

    users (id) {
        id -> Uuid,
        email -> Citext,
        password_hash -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        role -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    plans (id) {
        id -> Int4,
        code -> Text,
        name -> Text,
        description -> Text,
        price -> Numeric,
        currency -> Bpchar,
        billing_cycle -> Text,
        trial_period_days -> Int4,
        is_trial_plan -> Bool,
        converts_to_plan_id -> Nullable<Int4>,
        features -> Jsonb,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        seat_price -> Nullable<Numeric>,
        included_seats -> Nullable<Int4>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Uuid,
        user_id -> Uuid,
        plan_id -> Int4,
        quantity -> Int4,
        status -> Text,
        is_trial -> Bool,
        billing_anchor -> Nullable<Timestamptz>,
        current_period_start -> Nullable<Timestamptz>,
        current_period_end -> Nullable<Timestamptz>,
        trial_start -> Nullable<Timestamptz>,
        trial_end -> Nullable<Timestamptz>,
        cancel_at_period_end -> Bool,
        canceled_at -> Nullable<Timestamptz>,
        cancel_reason -> Nullable<Text>,
        ended_at -> Nullable<Timestamptz>,
        pending_plan_id -> Nullable<Int4>,
        pending_quantity -> Nullable<Int4>,
        payment_method_id -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        pause_at -> Nullable<Timestamptz>,
        paused_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    subscription_events (id) {
        id -> Int8,
        subscription_id -> Uuid,
        event_type -> Text,
        from_status -> Nullable<Text>,
        to_status -> Text,
        data -> Jsonb,
        occurred_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    invoices (id) {
        id -> Uuid,
        user_id -> Uuid,
        subscription_id -> Nullable<Uuid>,
        number -> Nullable<Text>,
        status -> Text,
        kind -> Text,
        currency -> Bpchar,
        subtotal -> Numeric,
        total -> Numeric,
        amount_due -> Numeric,
        amount_paid -> Numeric,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        finalized_at -> Nullable<Timestamptz>,
        due_at -> Nullable<Timestamptz>,
        paid_at -> Nullable<Timestamptz>,
        voided_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        paid_by_transaction_id -> Nullable<Uuid>,
        attempt_count -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        last_decline_code -> Nullable<Text>,
    }
}

diesel::table! {
    inbound_webhooks (event_id) {
        event_id -> Text,
        event_type -> Text,
        outcome -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    invoice_lines (id) {
        id -> Int8,
        invoice_id -> Uuid,
        position -> Int4,
        kind -> Text,
        description -> Text,
        quantity -> Int8,
        unit_amount -> Numeric,
        amount -> Numeric,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        feature -> Nullable<Text>,
        tier -> Nullable<Int4>,
    }
}

diesel::table! {
    invoice_number_counters (month) {
        month -> Int4,
        last_number -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    usage_counters (subscription_id, feature, period_start) {
        subscription_id -> Uuid,
        feature -> Text,
        period_start -> Timestamptz,
        used -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    usage_events (id) {
        id -> Uuid,
        subscription_id -> Uuid,
        feature -> Text,
        period_start -> Timestamptz,
        delta -> Int8,
        idempotency_key -> Nullable<Text>,
        recorded_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(subscriptions -> users (user_id));
diesel::joinable!(subscriptions -> plans (plan_id));
diesel::joinable!(subscription_events -> subscriptions (subscription_id));
diesel::joinable!(invoices -> users (user_id));
diesel::joinable!(invoices -> subscriptions (subscription_id));
diesel::table! {
    pending_invoice_items (id) {
        id -> Int8,
        subscription_id -> Uuid,
        kind -> Text,
        description -> Text,
        quantity -> Int8,
        unit_amount -> Numeric,
        amount -> Numeric,
        currency -> Bpchar,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        invoice_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        feature -> Nullable<Text>,
        tier -> Nullable<Int4>,
    }
}

diesel::table! {
    credit_notes (id) {
        id -> Uuid,
        number -> Text,
        invoice_id -> Uuid,
        refund_id -> Uuid,
        transaction_id -> Uuid,
        amount -> Numeric,
        currency -> Bpchar,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_note_number_counters (month) {
        month -> Int4,
        last_number -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(credit_notes -> invoices (invoice_id));
diesel::joinable!(invoice_lines -> invoices (invoice_id));
diesel::joinable!(pending_invoice_items -> subscriptions (subscription_id));
diesel::joinable!(usage_counters -> subscriptions (subscription_id));
diesel::joinable!(usage_events -> subscriptions (subscription_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_tokens,
    plans,
    subscriptions,
    subscription_events,
    invoices,
    invoice_lines,
    invoice_number_counters,
    credit_notes,
    credit_note_number_counters,
    pending_invoice_items,
    usage_counters,
    usage_events,
    inbound_webhooks,
);
