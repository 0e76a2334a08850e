//! The plan catalog.

use billing_infra::CachedDsl;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{PlanChanges, PlanRow};
use super::schema::{plans, subscriptions};
use billing_infra::DbError;

/// Every plan, active or not, by id.
pub async fn all(conn: &mut AsyncPgConnection) -> Result<Vec<PlanRow>, DbError> {
    Ok(plans::table.order(plans::id.asc()).select(PlanRow::as_select()).load(conn).await?)
}

/// One plan.
pub async fn find(conn: &mut AsyncPgConnection, id: i32) -> Result<Option<PlanRow>, DbError> {
    Ok(plans::table.find(id).select(PlanRow::as_select()).first(conn).await.optional()?)
}

/// Inserts a plan (every required field set in `plan`).
pub async fn insert(conn: &mut AsyncPgConnection, plan: &PlanChanges) -> Result<PlanRow, DbError> {
    Ok(diesel::insert_into(plans::table)
        .values(plan)
        .returning(PlanRow::as_returning())
        .cached()
        .get_result(conn)
        .await?)
}

/// Inserts the plan unless one with its code exists (seeding is idempotent).
pub async fn insert_if_absent(conn: &mut AsyncPgConnection, plan: &PlanChanges) -> Result<Option<PlanRow>, DbError> {
    Ok(diesel::insert_into(plans::table)
        .values(plan)
        .on_conflict(plans::code)
        .do_nothing()
        .returning(PlanRow::as_returning())
        .cached()
        .get_result(conn)
        .await
        .optional()?)
}

/// Applies a partial update.
pub async fn update(conn: &mut AsyncPgConnection, id: i32, changes: &PlanChanges) -> Result<Option<PlanRow>, DbError> {
    Ok(diesel::update(plans::table.find(id))
        .set(changes)
        .returning(PlanRow::as_returning())
        .cached()
        .get_result(conn)
        .await
        .optional()?)
}

/// True when any subscription, current or past, uses the plan.
pub async fn has_subscriptions(conn: &mut AsyncPgConnection, id: i32) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(subscriptions::table.filter(subscriptions::plan_id.eq(id))))
        .get_result(conn)
        .await?)
}
