//! The plan catalog: validated plans, cached in memory.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use billing_domain::{BillingCycle, Money, PlanFeatures};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::db;
pub use crate::db::models::PlanChanges;
use crate::db::models::PlanRow;
use crate::error::ServiceError;
use crate::state::AppState;

/// A plan, parsed and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub cycle: BillingCycle,
    pub trial_period_days: u32,
    pub is_trial_plan: bool,
    pub converts_to_plan_id: Option<i32>,
    /// The features as stored (shown to customers).
    pub features_json: Value,
    pub features: PlanFeatures,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PlanRow> for Plan {
    type Error = ServiceError;

    fn try_from(row: PlanRow) -> Result<Self, Self::Error> {
        let bad = |what: &str| ServiceError::Internal(format!("plan {} has an invalid {what}", row.id));
        let currency = row.currency;
        Ok(Plan {
            id: row.id,
            price: Money::from_decimal(row.price, currency).map_err(|_| bad("price"))?,
            cycle: row.billing_cycle,
            trial_period_days: u32::try_from(row.trial_period_days).map_err(|_| bad("trial length"))?,
            features: PlanFeatures::parse(&row.features).map_err(|_| bad("features"))?,
            code: row.code,
            name: row.name,
            description: row.description,
            is_trial_plan: row.is_trial_plan,
            converts_to_plan_id: row.converts_to_plan_id,
            features_json: row.features,
            is_active: row.is_active,
            created_at: row.created_at,
        })
    }
}

/// How long another replica may serve a catalog that an admin changed elsewhere.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Every plan in memory; reloaded after `CACHE_TTL`, and at once after a change made through this process.
#[derive(Debug, Clone, Default)]
pub struct PlanCache {
    inner: Arc<RwLock<Option<Loaded>>>,
}

/// A catalog and when it was loaded.
type Loaded = (Instant, Arc<Vec<Plan>>);

impl PlanCache {
    /// Every plan (active or not), loading them when the cache is cold or stale.
    pub async fn all(&self, state: &AppState) -> Result<Arc<Vec<Plan>>, ServiceError> {
        if let Ok(guard) = self.inner.read()
            && let Some((loaded, plans)) = guard.as_ref()
            && loaded.elapsed() < CACHE_TTL
        {
            return Ok(plans.clone());
        }
        let rows = db::plans::all(&mut *state.conn().await?).await?;
        let plans = Arc::new(rows.into_iter().map(Plan::try_from).collect::<Result<Vec<_>, _>>()?);
        if let Ok(mut guard) = self.inner.write() {
            *guard = Some((Instant::now(), plans.clone()));
        }
        Ok(plans)
    }

    /// One plan, active or not.
    pub async fn get(&self, state: &AppState, id: i32) -> Result<Option<Plan>, ServiceError> {
        Ok(self.all(state).await?.iter().find(|p| p.id == id).cloned())
    }

    /// Forgets the cached catalog (after a change).
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.inner.write() {
            *guard = None;
        }
    }
}

/// The public catalog: active plans.
pub async fn active_plans(state: &AppState) -> Result<Vec<Plan>, ServiceError> {
    Ok(state.plans.all(state).await?.iter().filter(|p| p.is_active).cloned().collect())
}

/// One active plan (inactive plans are not for sale: 404).
pub async fn active_plan(state: &AppState, id: i32) -> Result<Plan, ServiceError> {
    match state.plans.get(state, id).await? {
        Some(plan) if plan.is_active => Ok(plan),
        _ => Err(ServiceError::PlanNotFound),
    }
}

/// Creates a plan from validated changes (every required field present).
pub async fn create(state: &AppState, plan: PlanChanges) -> Result<Plan, ServiceError> {
    if let Some(target) = plan.converts_to_plan_id.flatten() {
        ensure_exists(state, target).await?;
    }
    let row = db::plans::insert(&mut *state.conn().await?, &plan).await.map_err(map_unique)?;
    state.plans.invalidate();
    Plan::try_from(row)
}

/// Applies a partial update (already validated field by field).
pub async fn update(state: &AppState, id: i32, changes: PlanChanges) -> Result<Plan, ServiceError> {
    if let Some(target) = changes.converts_to_plan_id.flatten() {
        if target == id {
            return Err(ServiceError::invalid("converts_to_plan_id", "a plan cannot convert to itself"));
        }
        ensure_exists(state, target).await?;
    }
    let row = db::plans::update(&mut *state.conn().await?, id, &changes).await.map_err(map_unique)?;
    state.plans.invalidate();
    Plan::try_from(row.ok_or(ServiceError::PlanNotFound)?)
}

/// Deactivates a plan: it leaves the catalog; existing subscriptions keep it. Plans are never hard-deleted.
pub async fn deactivate(state: &AppState, id: i32) -> Result<Plan, ServiceError> {
    update(state, id, PlanChanges { is_active: Some(false), ..PlanChanges::default() }).await
}

async fn ensure_exists(state: &AppState, id: i32) -> Result<(), ServiceError> {
    if db::plans::find(&mut *state.conn().await?, id).await?.is_none() {
        // A plan named in the body that does not exist is a 404, as `plan_id` of a new subscription is.
        return Err(ServiceError::PlanNotFound);
    }
    Ok(())
}

fn map_unique(err: billing_infra::DbError) -> ServiceError {
    match err {
        billing_infra::DbError::UniqueViolation { .. } => ServiceError::PlanCodeTaken,
        billing_infra::DbError::CheckViolation { constraint } if constraint == "plans_trial_has_days" => {
            ServiceError::invalid("trial_period_days", "a trial plan needs at least one trial day")
        }
        other => other.into(),
    }
}
