//! The plan catalog's operations: the public list, and administrators' changes (which refresh the cache).

use crate::db;
pub use crate::db::models::PlanChanges;
use crate::error::ServiceError;
pub use crate::services::catalog::{Plan, PlanCache};
use crate::state::AppState;

/// The public catalog: active plans.
pub async fn active_plans(state: &AppState) -> Result<Vec<Plan>, ServiceError> {
    Ok(state.plans.all(&state.infra.db).await?.iter().filter(|p| p.is_active).cloned().collect())
}

/// One active plan (inactive plans are not for sale: 404).
pub async fn active_plan(state: &AppState, id: i32) -> Result<Plan, ServiceError> {
    match state.plans.get(&state.infra.db, id).await? {
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
