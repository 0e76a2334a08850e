//! Subscriptions and their event log.

use billing_domain::{InvoiceKind, InvoiceStatus, SubscriptionStatus};
use billing_domain::{SubscriptionId, UserId};
use billing_infra::CachedDsl;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{
    NewSubscription, NewSubscriptionEvent, SubscriptionChanges, SubscriptionEventRow, SubscriptionRow,
};
use super::schema::{subscription_events, subscriptions};
use billing_infra::DbError;

/// How long after this process changes a user's subscriptions its cache serves none of theirs: long enough for
/// the change's transaction to commit and its notification to arrive, so a client reading right after its own
/// write is answered from the database, never from the entry the write made stale.
pub const RECENT_WRITE: std::time::Duration = std::time::Duration::from_secs(5);

/// The users whose subscriptions this process changed, and when (process-wide: ids are unique across databases).
static RECENT_WRITES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<UserId, std::time::Instant>>> =
    std::sync::LazyLock::new(Default::default);

/// Notes that this process is changing `user`'s subscriptions (before the change commits).
fn wrote(user: UserId) {
    if let Ok(mut recent) = RECENT_WRITES.lock() {
        if recent.len() >= 10_000 {
            recent.retain(|_, at| at.elapsed() < RECENT_WRITE);
        }
        recent.insert(user, std::time::Instant::now());
    }
}

/// True when this process changed `user`'s subscriptions within [`RECENT_WRITE`].
pub fn written_recently(user: UserId) -> bool {
    RECENT_WRITES.lock().map_or(true, |recent| recent.get(&user).is_some_and(|at| at.elapsed() < RECENT_WRITE))
}

const CURRENT: [SubscriptionStatus; 5] = [
    SubscriptionStatus::Pending,
    SubscriptionStatus::Trial,
    SubscriptionStatus::Active,
    SubscriptionStatus::PastDue,
    SubscriptionStatus::Paused,
];

/// Inserts a subscription; unique violations name the partial index that refused it.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewSubscription) -> Result<SubscriptionRow, DbError> {
    wrote(new.user_id);
    Ok(diesel::insert_into(subscriptions::table)
        .values(new)
        .returning(SubscriptionRow::as_returning())
        .cached()
        .get_result(conn)
        .await?)
}

/// One subscription.
pub async fn find(conn: &mut AsyncPgConnection, id: SubscriptionId) -> Result<Option<SubscriptionRow>, DbError> {
    Ok(subscriptions::table.find(id).select(SubscriptionRow::as_select()).first(conn).await.optional()?)
}

/// A user's subscriptions, newest first.
pub async fn list_for_user(conn: &mut AsyncPgConnection, user: UserId) -> Result<Vec<SubscriptionRow>, DbError> {
    Ok(subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .order((subscriptions::created_at.desc(), subscriptions::id.desc()))
        .select(SubscriptionRow::as_select())
        .load(conn)
        .await?)
}

/// A user's current subscriptions (pending, trial, active, past due, paused): at most a trial and a pending one.
pub async fn current_for_user(conn: &mut AsyncPgConnection, user: UserId) -> Result<Vec<SubscriptionRow>, DbError> {
    Ok(subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .filter(subscriptions::status.eq_any(CURRENT))
        .select(SubscriptionRow::as_select())
        .load(conn)
        .await?)
}

/// True when the user ever had a trial.
pub async fn has_had_trial(conn: &mut AsyncPgConnection, user: UserId) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        subscriptions::table.filter(subscriptions::user_id.eq(user)).filter(subscriptions::is_trial.eq(true)),
    ))
    .get_result(conn)
    .await?)
}

/// Applies `changes` only if the row is still at `expected_version` (optimistic concurrency); the version goes
/// up by one. `None` means another change won.
pub async fn update_versioned(
    conn: &mut AsyncPgConnection,
    id: SubscriptionId,
    expected_version: i32,
    changes: &SubscriptionChanges,
) -> Result<Option<SubscriptionRow>, DbError> {
    let row: Option<SubscriptionRow> =
        diesel::update(subscriptions::table.find(id).filter(subscriptions::version.eq(expected_version)))
            .set((changes, subscriptions::version.eq(subscriptions::version + 1)))
            .returning(SubscriptionRow::as_returning())
            .cached()
            .get_result(conn)
            .await
            .optional()?;
    if let Some(row) = &row {
        wrote(row.user_id);
    }
    Ok(row)
}

/// Appends to the event log.
pub async fn insert_event(conn: &mut AsyncPgConnection, event: &NewSubscriptionEvent) -> Result<(), DbError> {
    diesel::insert_into(subscription_events::table).values(event).cached().execute(conn).await?;
    Ok(())
}

/// The event log of a subscription, oldest first.
pub async fn events(conn: &mut AsyncPgConnection, id: SubscriptionId) -> Result<Vec<SubscriptionEventRow>, DbError> {
    Ok(subscription_events::table
        .filter(subscription_events::subscription_id.eq(id))
        .order(subscription_events::id.asc())
        .select(SubscriptionEventRow::as_select())
        .load(conn)
        .await?)
}

/// One subscription, locked for the rest of the transaction.
pub async fn find_for_update(
    conn: &mut AsyncPgConnection,
    id: SubscriptionId,
) -> Result<Option<SubscriptionRow>, DbError> {
    Ok(subscriptions::table.find(id).for_update().select(SubscriptionRow::as_select()).first(conn).await.optional()?)
}

/// Records the inbound webhook `event_id`; false when it was already recorded (a replay).
pub async fn record_inbound_webhook(
    conn: &mut AsyncPgConnection,
    event_id: &str,
    event_type: &str,
    outcome: &str,
    payload: &serde_json::Value,
) -> Result<bool, DbError> {
    use super::schema::inbound_webhooks as w;
    let inserted = diesel::insert_into(w::table)
        .values((
            w::event_id.eq(event_id),
            w::event_type.eq(event_type),
            w::outcome.eq(outcome),
            w::payload.eq(payload),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Remembers the saved payment method later charges use.
pub async fn set_payment_method(
    conn: &mut AsyncPgConnection,
    id: SubscriptionId,
    payment_method: &str,
) -> Result<(), DbError> {
    let user: Option<UserId> = diesel::update(subscriptions::table.find(id))
        .set(subscriptions::payment_method_id.eq(payment_method))
        .returning(subscriptions::user_id)
        .cached()
        .get_result(conn)
        .await
        .optional()?;
    user.into_iter().for_each(wrote);
    Ok(())
}

/// Active subscriptions at or past their period end with no renewal invoice for the next period yet.
pub async fn renewals_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<SubscriptionId>, DbError> {
    use super::schema::invoices;
    let invoiced = invoices::table
        .filter(invoices::subscription_id.eq(subscriptions::id.nullable()))
        .filter(invoices::kind.eq(InvoiceKind::Renewal))
        .filter(invoices::period_start.eq(subscriptions::current_period_end))
        .filter(invoices::status.ne(InvoiceStatus::Void));
    Ok(subscriptions::table
        .filter(subscriptions::status.eq(SubscriptionStatus::Active))
        .filter(subscriptions::current_period_end.le(now))
        .filter(diesel::dsl::not(diesel::dsl::exists(invoiced)))
        .order(subscriptions::current_period_end.asc())
        .limit(limit)
        .select(subscriptions::id)
        .load(conn)
        .await?)
}

/// Trials at or past their end.
pub async fn trials_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<SubscriptionId>, DbError> {
    Ok(subscriptions::table
        .filter(subscriptions::status.eq(SubscriptionStatus::Trial))
        .filter(subscriptions::trial_end.le(now))
        .order(subscriptions::trial_end.asc())
        .limit(limit)
        .select(subscriptions::id)
        .load(conn)
        .await?)
}
