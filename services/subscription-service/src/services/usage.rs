//! Usage metering. The answer comes from Redis: one Lua script checks the limit, increments the counter and
//! appends the accepted event to a stream, atomically. The fold moves stream events into PostgreSQL in batches,
//! idempotently (the event id is the row's key). A counter missing from Redis is rebuilt from PostgreSQL (after
//! folding what is still in the stream) before the request is answered.

use billing_domain::{SubscriptionId, UserId};
use std::collections::BTreeMap;

use billing_domain::Feature;
use billing_infra::Redis;
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use redis::Script;
use uuid::Uuid;

use crate::db;
use crate::db::models::SubscriptionRow;
use crate::db::usage::NewUsageEvent;
use crate::error::ServiceError;
use crate::services::plans::Plan;
use crate::state::AppState;

// KEYS: counter, idempotency, stream. ARGV: delta, limit (-1: none), has_idempotency_key, idempotency ttl ms,
// event id, subscription, feature, period start (unix µs), idempotency key, recorded at (unix µs).
// Microseconds: PostgreSQL keeps timestamps to the microsecond, and the folded row must match the period exactly.
const USE: &str = r"
if ARGV[3] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'dup', prev} end
end
local cur = redis.call('GET', KEYS[1])
if not cur then return {'missing', '0'} end
cur = tonumber(cur)
local delta = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and cur + delta > limit then return {'limit', tostring(cur)} end
local new = redis.call('INCRBY', KEYS[1], delta)
redis.call('XADD', KEYS[3], '*', 'id', ARGV[5], 'sub', ARGV[6], 'feature', ARGV[7], 'period', ARGV[8],
  'delta', ARGV[1], 'idem', ARGV[9], 'at', ARGV[10])
if ARGV[3] == '1' then redis.call('SET', KEYS[2], tostring(new), 'PX', ARGV[4]) end
return {'ok', tostring(new)}
";

/// The usage keys on one Redis.
#[derive(Debug, Clone, Copy)]
struct UsageMeter<'a> {
    redis: &'a Redis,
}

/// The answer to a use.
#[derive(Debug, Clone)]
pub struct UseOutcome {
    pub feature: String,
    pub current_usage: i64,
    pub limit: Option<i64>,
    pub reset_at: DateTime<Utc>,
}

/// One metered feature in the current period.
#[derive(Debug, Clone)]
pub struct FeatureUsage {
    pub feature: String,
    pub used: i64,
    pub limit: Option<i64>,
}

/// The usage of the current period.
#[derive(Debug, Clone)]
pub struct PeriodUsage {
    pub subscription_id: SubscriptionId,
    pub plan_id: i32,
    pub period_start: DateTime<Utc>,
    pub reset_at: DateTime<Utc>,
    pub features: Vec<FeatureUsage>,
}

/// How long Redis keeps a counter after its period ended (late reads, then it is rebuilt from PostgreSQL).
const COUNTER_GRACE: Duration = Duration::days(7);
/// Events folded per batch.
const FOLD_BATCH: usize = 500;

impl<'a> UsageMeter<'a> {
    fn of(state: &'a AppState) -> Self {
        Self { redis: &state.infra.redis }
    }

    // Every usage key shares the `{usage}` hash tag, so the script's keys live in one Redis Cluster slot.
    fn counter_key(&self, sub: SubscriptionId, feature: &str, period: DateTime<Utc>) -> String {
        self.redis.key(&format!("{{usage}}:c:{sub}:{feature}:{}", period.timestamp_micros()))
    }

    fn idempotency_key(&self, sub: SubscriptionId, key: &str) -> String {
        self.redis.key(&format!("{{usage}}:i:{sub}:{key}"))
    }

    fn stream_key(&self) -> String {
        self.redis.key("{usage}:events")
    }
}

/// The period usage at `now` counts in. Before the period end, the current one. After it, until the renewal
/// moves the subscription on (its invoice waits for the payment, and dunning may take days), the next one: the
/// renewal has billed the period that ended, and the next renewal bills this one. The start is the key of the
/// counters either way (a renewal always starts the next period at the end of the last).
pub fn usage_period(
    sub: &SubscriptionRow,
    plans: &[Plan],
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ServiceError> {
    let (Some(start), Some(end)) = (sub.current_period_start, sub.current_period_end) else {
        return Err(ServiceError::NoActiveSubscription);
    };
    if now < end {
        return Ok((start, end));
    }
    Ok(crate::services::billing::next_period(sub, plans, end)?.period)
}

/// The subscription giving `user` access at `now` and its plan. One that ends or pauses at its period end gives
/// none once the end has passed, though the tick has not yet ended or paused it; a paused one is named.
async fn access(
    state: &AppState,
    user: UserId,
) -> Result<(SubscriptionRow, Plan, std::sync::Arc<Vec<Plan>>), ServiceError> {
    use billing_domain::SubscriptionStatus::{Active, PastDue, Paused, Trial};
    let subscriptions = state.subscriptions.of_user(&state.infra.db, user).await?;
    // The newest giving access (a user has at most one at a time).
    let Some(sub) = subscriptions.iter().find(|s| matches!(s.status, Trial | Active | PastDue)).cloned() else {
        let paused = subscriptions.iter().any(|s| s.status == Paused);
        return Err(if paused { ServiceError::SubscriptionPaused } else { ServiceError::NoActiveSubscription });
    };
    let now = state.now();
    let ended = sub.current_period_end.is_some_and(|end| end <= now);
    if ended && sub.cancel_at_period_end {
        return Err(ServiceError::NoActiveSubscription);
    }
    if ended && sub.pause_at.is_some_and(|at| at <= now) {
        return Err(ServiceError::SubscriptionPaused);
    }
    let plans = state.plans.all(&state.infra.db).await?;
    let plan = plans.iter().find(|p| p.id == sub.plan_id).cloned().ok_or(ServiceError::PlanNotFound)?;
    Ok((sub, plan, plans))
}

fn limit_of(feature: &Feature) -> Option<i64> {
    feature.limit().map(|l| i64::try_from(l).unwrap_or(i64::MAX))
}

/// Records `delta` units of `feature` for the caller's current subscription, unless that would pass the limit.
pub async fn use_feature(
    state: &AppState,
    user: UserId,
    feature: &str,
    delta: i64,
    idempotency_key: Option<&str>,
) -> Result<UseOutcome, ServiceError> {
    let (sub, plan, plans) = access(state, user).await?;
    let now = state.now();
    let spec = plan
        .features
        .get(feature)
        .filter(|f| f.is_counted())
        .ok_or_else(|| ServiceError::FeatureNotInPlan(feature.to_owned()))?;
    let limit = limit_of(spec);
    let (period_start, period_end) = usage_period(&sub, &plans, now)?;
    let meter = UsageMeter::of(state);
    let counter = meter.counter_key(sub.id, feature, period_start);
    let idem =
        idempotency_key.map(|k| meter.idempotency_key(sub.id, k)).unwrap_or_else(|| meter.redis.key("{usage}:i:none"));
    let ttl_ms = ((period_end - now).max(Duration::zero()) + COUNTER_GRACE).num_milliseconds().max(1);
    let event_id = Uuid::now_v7();

    for attempt in 0..2 {
        let mut conn = meter.redis.conn();
        let (outcome, value): (String, String) = Script::new(USE)
            .key(&counter)
            .key(&idem)
            .key(meter.stream_key())
            .arg(delta)
            .arg(limit.unwrap_or(-1))
            .arg(if idempotency_key.is_some() { "1" } else { "0" })
            .arg(ttl_ms)
            .arg(event_id.to_string())
            .arg(sub.id.to_string())
            .arg(feature)
            .arg(period_start.timestamp_micros())
            .arg(idempotency_key.unwrap_or(""))
            .arg(now.timestamp_micros())
            .invoke_async(&mut conn)
            .await?;
        let value: i64 = value.parse().unwrap_or(0);
        match outcome.as_str() {
            "ok" | "dup" => {
                return Ok(UseOutcome {
                    feature: feature.to_owned(),
                    current_usage: value,
                    limit,
                    reset_at: period_end,
                });
            }
            "limit" => {
                return Err(ServiceError::UsageLimitExceeded {
                    feature: feature.to_owned(),
                    current: value,
                    limit: limit.unwrap_or(i64::MAX),
                    reset_at: billing_http::rfc3339(period_end),
                    retry_after_secs: u64::try_from((period_end - now).num_seconds()).unwrap_or(0).max(1),
                });
            }
            "missing" if attempt == 0 => {
                rebuild_counter(state, sub.id, feature, period_start, &counter, ttl_ms).await?
            }
            _ => break,
        }
    }
    Err(ServiceError::Unavailable("the usage counter could not be rebuilt".to_owned()))
}

/// Sets a missing counter from PostgreSQL, after folding every event still in the stream.
async fn rebuild_counter(
    state: &AppState,
    sub: SubscriptionId,
    feature: &str,
    period: DateTime<Utc>,
    counter: &str,
    ttl_ms: i64,
) -> Result<(), ServiceError> {
    sync(state).await?;
    let used = db::usage::used(&mut *state.conn().await?, sub, feature, period).await?;
    let mut conn = state.infra.redis.conn();
    // NX: if another request rebuilt it meanwhile, its value (which may already include new uses) wins.
    redis::cmd("SET").arg(counter).arg(used).arg("NX").arg("PX").arg(ttl_ms).exec_async(&mut conn).await?;
    Ok(())
}

/// Current usage of every counted feature of the caller's plan.
pub async fn current(state: &AppState, user: UserId) -> Result<PeriodUsage, ServiceError> {
    let (sub, plan, plans) = access(state, user).await?;
    let now = state.now();
    let (period_start, reset_at) = usage_period(&sub, &plans, now)?;
    let ttl_ms = ((reset_at - now).max(Duration::zero()) + COUNTER_GRACE).num_milliseconds().max(1);
    let mut features = Vec::new();
    for (name, spec) in plan.features.counted() {
        let key = UsageMeter::of(state).counter_key(sub.id, name, period_start);
        let mut conn = state.infra.redis.conn();
        let mut value: Option<i64> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if value.is_none() {
            rebuild_counter(state, sub.id, name, period_start, &key, ttl_ms).await?;
            value = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        }
        features.push(FeatureUsage { feature: name.to_owned(), used: value.unwrap_or(0), limit: limit_of(spec) });
    }
    Ok(PeriodUsage { subscription_id: sub.id, plan_id: plan.id, period_start, reset_at, features })
}

/// The caller's usage in the period starting at `start`: the current period as [`current`] answers it, or a past
/// period of any of the caller's subscriptions, from the ledger (its end as its invoices say; limits are those of
/// the subscription's plan today). Instants are shown to the second, so `start` names the period starting within
/// that second. 404 `period_not_found` when no period of theirs starts there.
pub async fn of_period(state: &AppState, user: UserId, start: DateTime<Utc>) -> Result<PeriodUsage, ServiceError> {
    let second = (start, start + Duration::seconds(1));
    let within = |at: DateTime<Utc>| second.0 <= at && at < second.1;
    match current(state, user).await {
        Ok(usage) if within(usage.period_start) => return Ok(usage),
        Ok(_) | Err(ServiceError::NoActiveSubscription | ServiceError::SubscriptionPaused) => {}
        Err(other) => return Err(other),
    }
    // A period that just ended may still have events in the stream.
    sync(state).await?;
    let mut conn = state.conn().await?;
    let subs = db::subscriptions::list_for_user(&mut conn, user).await?;
    let ids: Vec<SubscriptionId> = subs.iter().map(|s| s.id).collect();
    let (sub_id, start, end) = match db::invoices::period_from(&mut conn, &ids, second).await? {
        Some(bounds) => bounds,
        // No invoice names it: a trial, or a period that ended without one (paused or canceled, nothing billed).
        None => subs
            .iter()
            .find_map(|s| {
                if let (Some(start), Some(end)) = (s.trial_start, s.trial_end)
                    && within(start)
                {
                    Some((s.id, start, end))
                } else if let (Some(start), Some(end)) = (s.current_period_start, s.current_period_end)
                    && within(start)
                {
                    Some((s.id, start, s.paused_at.or(s.ended_at).map_or(end, |at| at.min(end))))
                } else {
                    None
                }
            })
            .ok_or(ServiceError::PeriodNotFound)?,
    };
    let counters = db::usage::counters_at(&mut conn, &[sub_id], (start, start + Duration::microseconds(1))).await?;
    drop(conn);
    let sub = subs.iter().find(|s| s.id == sub_id).ok_or(ServiceError::PeriodNotFound)?;
    let plan = state.plans.get(&state.infra.db, sub.plan_id).await?.ok_or(ServiceError::PlanNotFound)?;
    let used = |name: &str| counters.iter().find(|(_, f, _)| f == name).map(|(_, _, n)| *n);
    let mut features: Vec<FeatureUsage> = plan
        .features
        .counted()
        .map(|(name, spec)| FeatureUsage {
            feature: name.to_owned(),
            used: used(name).unwrap_or(0),
            limit: limit_of(spec),
        })
        .collect();
    for (_, name, n) in &counters {
        if !features.iter().any(|f| &f.feature == name) {
            features.push(FeatureUsage { feature: name.clone(), used: *n, limit: None });
        }
    }
    Ok(PeriodUsage { subscription_id: sub_id, plan_id: plan.id, period_start: start, reset_at: end, features })
}

/// What the current plan grants for one feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Entitlement {
    /// False only for a feature the plan turns off (`"audit_log": false`).
    pub enabled: bool,
    pub limit: Option<i64>,
    /// Units used this period (counted features only).
    pub used: Option<i64>,
    /// The price model of a feature billed in arrears.
    pub billing: Option<&'static str>,
    /// The plan's definition of an informational feature that is not a plain switch (`{"limit": "1GB"}`).
    pub value: Option<serde_json::Value>,
}

/// Every feature of the caller's current plan: switches, limits, billed usage, with this period's usage.
pub async fn entitlements(
    state: &AppState,
    user: UserId,
) -> Result<(i32, std::collections::BTreeMap<String, Entitlement>), ServiceError> {
    let usage = current(state, user).await?;
    let plan = state.plans.get(&state.infra.db, usage.plan_id).await?.ok_or(ServiceError::PlanNotFound)?;
    let used = |name: &str| usage.features.iter().find(|f| f.feature == name).map(|f| f.used);
    let features = plan
        .features
        .iter()
        .map(|(name, feature)| {
            let entitlement = match feature {
                Feature::Informational(serde_json::Value::Bool(on)) => {
                    Entitlement { enabled: *on, limit: None, used: None, billing: None, value: None }
                }
                Feature::Informational(other) => {
                    Entitlement { enabled: true, limit: None, used: None, billing: None, value: Some(other.clone()) }
                }
                Feature::Billed(price) => Entitlement {
                    enabled: true,
                    limit: None,
                    used: used(name),
                    billing: Some(price.model.name()),
                    value: None,
                },
                counted => Entitlement {
                    enabled: true,
                    limit: limit_of(counted),
                    used: used(name),
                    billing: None,
                    value: None,
                },
            };
            (name.to_owned(), entitlement)
        })
        .collect();
    Ok((plan.id, features))
}

/// `q:sub:usage_sync`: fold what Redis counted into PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageFold {}

impl billing_queue::Payload for UsageFold {
    const QUEUE: billing_queue::QueueName = billing_queue::QueueName::SubUsageSync;
    const ACTION: &'static str = "fold";
}

/// Folds every event waiting in the Redis stream into PostgreSQL; returns the units added. Safe to run
/// concurrently and repeatedly: an event is counted once however often it is folded. Within a process one fold
/// runs at a time: requests that all find a counter missing (a new period, an evicted key) would otherwise each
/// fold the same backlog at once, fighting over the same counter rows (seen: 64 requests stalled 50 s); the ones
/// that wait find the stream already folded.
pub async fn sync(state: &AppState) -> Result<i64, ServiceError> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let stream = UsageMeter::of(state).stream_key();
    let mut added = 0;
    loop {
        let mut conn = state.infra.redis.conn();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(FOLD_BATCH)
            .query_async(&mut conn)
            .await?;
        if reply.ids.is_empty() {
            return Ok(added);
        }
        let mut events = Vec::with_capacity(reply.ids.len());
        let mut ids = Vec::with_capacity(reply.ids.len());
        for entry in &reply.ids {
            ids.push(entry.id.clone());
            match parse_event(&entry.map) {
                Some(event) => events.push(event),
                None => tracing::error!(entry = %entry.id, "malformed usage event skipped"),
            }
        }
        let batch = events.clone();
        added += state
            .conn()
            .await?
            .transaction::<_, ServiceError, _>(async move |conn| Ok(db::usage::fold(conn, &batch).await?))
            .await?;
        // Only after the fold committed: a crash before this line folds the batch again, harmlessly.
        redis::cmd("XDEL").arg(&stream).arg(&ids).exec_async(&mut conn).await?;
        if reply.ids.len() < FOLD_BATCH {
            return Ok(added);
        }
    }
}

fn parse_event(map: &std::collections::HashMap<String, redis::Value>) -> Option<NewUsageEvent> {
    let text =
        |k: &str| -> Option<String> { map.get(k).and_then(|v| redis::from_redis_value::<String>(v.clone()).ok()) };
    let micros =
        |k: &str| -> Option<DateTime<Utc>> { text(k)?.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros) };
    Some(NewUsageEvent {
        id: text("id")?.parse().ok()?,
        subscription_id: text("sub")?.parse().ok()?,
        feature: text("feature")?,
        period_start: micros("period")?,
        delta: text("delta")?.parse().ok()?,
        idempotency_key: text("idem").filter(|k| !k.is_empty()),
        recorded_at: micros("at")?,
    })
}

/// Limits of the current period, by feature name.
pub fn limits_map(usage: &PeriodUsage) -> BTreeMap<String, (Option<i64>, i64)> {
    usage.features.iter().map(|f| (f.feature.clone(), (f.limit, f.used))).collect()
}
