//! Usage folded from Redis into the ledger.

use billing_domain::SubscriptionId;
use billing_infra::CachedDsl;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{usage_counters, usage_events};
use billing_infra::DbError;

/// One accepted use, as recorded in Redis.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = usage_events)]
pub struct NewUsageEvent {
    pub id: Uuid,
    pub subscription_id: SubscriptionId,
    pub feature: String,
    pub period_start: DateTime<Utc>,
    pub delta: i64,
    pub idempotency_key: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// Stores the events not stored yet and adds exactly those to the counters. Idempotent: an event folded twice
/// counts once (its id is the primary key). Run it inside a transaction. Returns the units added.
pub async fn fold(conn: &mut AsyncPgConnection, events: &[NewUsageEvent]) -> Result<i64, DbError> {
    if events.is_empty() {
        return Ok(0);
    }
    let inserted: Vec<(SubscriptionId, String, DateTime<Utc>, i64)> = diesel::insert_into(usage_events::table)
        .values(events)
        .on_conflict_do_nothing()
        .returning((
            usage_events::subscription_id,
            usage_events::feature,
            usage_events::period_start,
            usage_events::delta,
        ))
        .get_results(conn)
        .await?;
    let mut sums: std::collections::BTreeMap<(SubscriptionId, String, DateTime<Utc>), i64> = Default::default();
    for (sub, feature, period, delta) in inserted {
        *sums.entry((sub, feature, period)).or_default() += delta;
    }
    let mut added = 0;
    for ((sub, feature, period), delta) in sums {
        diesel::insert_into(usage_counters::table)
            .values((
                usage_counters::subscription_id.eq(sub),
                usage_counters::feature.eq(&feature),
                usage_counters::period_start.eq(period),
                usage_counters::used.eq(delta),
            ))
            .on_conflict((usage_counters::subscription_id, usage_counters::feature, usage_counters::period_start))
            .do_update()
            .set(usage_counters::used.eq(usage_counters::used + excluded(usage_counters::used)))
            .cached()
            .execute(conn)
            .await?;
        added += delta;
    }
    Ok(added)
}

/// The folded total of one counter.
pub async fn used(
    conn: &mut AsyncPgConnection,
    sub: SubscriptionId,
    feature: &str,
    period: DateTime<Utc>,
) -> Result<i64, DbError> {
    Ok(usage_counters::table
        .find((sub, feature, period))
        .select(usage_counters::used)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(0))
}

/// The folded counters of `subscriptions` for the period starting within `[from, to)`: (subscription, feature,
/// used).
pub async fn counters_at(
    conn: &mut AsyncPgConnection,
    subscriptions: &[SubscriptionId],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<(SubscriptionId, String, i64)>, DbError> {
    Ok(usage_counters::table
        .filter(usage_counters::subscription_id.eq_any(subscriptions))
        .filter(usage_counters::period_start.ge(from))
        .filter(usage_counters::period_start.lt(to))
        .order(usage_counters::feature.asc())
        .select((usage_counters::subscription_id, usage_counters::feature, usage_counters::used))
        .load(conn)
        .await?)
}
