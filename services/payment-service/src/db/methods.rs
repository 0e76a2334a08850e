//! Saved payment methods (`payment_methods`).

use billing_domain::PaymentMethodId;
use billing_domain::UserId;
use billing_infra::CachedDsl;
use billing_infra::DbError;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{ChargeableMethod, MethodRow, NewMethod};
use super::schema::payment_methods as m;

/// Stores a card unless its gateway token is stored already; the id of the token's row either way.
pub async fn insert_once(conn: &mut AsyncPgConnection, row: &NewMethod<'_>) -> Result<PaymentMethodId, DbError> {
    diesel::insert_into(m::table).values(row).on_conflict(m::gateway_token).do_nothing().cached().execute(conn).await?;
    Ok(m::table.filter(m::gateway_token.eq(row.gateway_token)).select(m::id).first(conn).await?)
}

/// Makes `id` the user's only default.
pub async fn make_default(conn: &mut AsyncPgConnection, user: UserId, id: PaymentMethodId) -> Result<(), DbError> {
    diesel::update(m::table.filter(m::user_id.eq(user)).filter(m::is_default))
        .set(m::is_default.eq(false))
        .cached()
        .execute(conn)
        .await?;
    diesel::update(m::table.find(id)).set(m::is_default.eq(true)).cached().execute(conn).await?;
    Ok(())
}

pub async fn find(conn: &mut AsyncPgConnection, id: PaymentMethodId) -> Result<Option<MethodRow>, DbError> {
    Ok(m::table.find(id).select(MethodRow::as_select()).first(conn).await.optional()?)
}

/// The user's live (not deleted) method `id`.
pub async fn live_of(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: PaymentMethodId,
) -> Result<Option<MethodRow>, DbError> {
    Ok(m::table
        .find(id)
        .filter(m::user_id.eq(user))
        .filter(m::deleted_at.is_null())
        .select(MethodRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A live method as a charge needs it, whoever owns it.
pub async fn chargeable(
    conn: &mut AsyncPgConnection,
    id: PaymentMethodId,
) -> Result<Option<ChargeableMethod>, DbError> {
    Ok(m::table
        .find(id)
        .filter(m::deleted_at.is_null())
        .select(ChargeableMethod::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Deleted: never charged again, no longer the default.
pub async fn mark_deleted(conn: &mut AsyncPgConnection, id: PaymentMethodId, at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(m::table.find(id))
        .set((m::deleted_at.eq(at), m::is_default.eq(false)))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// The user's live methods, the default first, then the newest.
fn live_for_user(user: UserId) -> m::BoxedQuery<'static, diesel::pg::Pg> {
    m::table
        .filter(m::user_id.eq(user))
        .filter(m::deleted_at.is_null())
        .order((m::is_default.desc(), m::created_at.desc(), m::id.desc()))
        .into_boxed()
}

/// The user's live methods, the default first, then the newest.
pub async fn list_live(conn: &mut AsyncPgConnection, user: UserId) -> Result<Vec<MethodRow>, DbError> {
    Ok(live_for_user(user).select(MethodRow::as_select()).load(conn).await?)
}

/// The user's default: the one they chose, else the newest live one.
pub async fn default_of(conn: &mut AsyncPgConnection, user: UserId) -> Result<Option<MethodRow>, DbError> {
    Ok(live_for_user(user).select(MethodRow::as_select()).first(conn).await.optional()?)
}
