//! Payment attempts (`transactions`).

use billing_domain::TransactionId;
use billing_domain::{PaymentMethodId, UserId};
use billing_infra::CachedDsl;
use billing_infra::DbError;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::TransactionStatus;
use super::models::{NewTransaction, TransactionRow};
use super::schema::transactions as t;

pub async fn find(conn: &mut AsyncPgConnection, id: TransactionId) -> Result<Option<TransactionRow>, DbError> {
    Ok(t::table.find(id).select(TransactionRow::as_select()).first(conn).await.optional()?)
}

/// The attempt, locked until the caller's transaction ends.
pub async fn find_for_update(
    conn: &mut AsyncPgConnection,
    id: TransactionId,
) -> Result<Option<TransactionRow>, DbError> {
    Ok(t::table.find(id).for_update().select(TransactionRow::as_select()).first(conn).await.optional()?)
}

/// The attempt made with the gateway key `key`, with its status.
pub async fn find_by_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<Option<(TransactionId, TransactionStatus)>, DbError> {
    Ok(t::table.filter(t::idempotency_key.eq(key)).select((t::id, t::status)).first(conn).await.optional()?)
}

/// Inserts the attempt unless one with its gateway key exists; whether it was inserted. (The key's row is the
/// caller's to read then: the common case, a new key, is one statement.)
pub async fn insert_new_key(conn: &mut AsyncPgConnection, row: &NewTransaction<'_>) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(t::table)
        .values(row)
        .on_conflict(t::idempotency_key)
        .do_nothing()
        .cached()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// A failed attempt tried again with the same key: pending again, its decline forgotten.
pub async fn reopen(conn: &mut AsyncPgConnection, id: TransactionId) -> Result<(), DbError> {
    diesel::update(t::table.find(id))
        .set((t::status.eq(TransactionStatus::Pending), t::decline_code.eq(None::<String>)))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Settles the attempt as succeeded if it is still pending (the update takes its row lock and checks in one
/// statement); whether it was.
pub async fn mark_succeeded(
    conn: &mut AsyncPgConnection,
    id: TransactionId,
    reference: &str,
    payment_method_id: Option<PaymentMethodId>,
) -> Result<bool, DbError> {
    let settled = diesel::update(t::table.find(id).filter(t::status.eq(TransactionStatus::Pending)))
        .set((
            t::status.eq(TransactionStatus::Succeeded),
            t::gateway_reference.eq(reference),
            t::payment_method_id.eq(payment_method_id),
        ))
        .cached()
        .execute(conn)
        .await?;
    Ok(settled == 1)
}

/// Settles the attempt as declined if it is still pending; whether it was.
pub async fn mark_failed(
    conn: &mut AsyncPgConnection,
    id: TransactionId,
    reference: &str,
    code: &str,
) -> Result<bool, DbError> {
    let settled = diesel::update(t::table.find(id).filter(t::status.eq(TransactionStatus::Pending)))
        .set((t::status.eq(TransactionStatus::Failed), t::gateway_reference.eq(reference), t::decline_code.eq(code)))
        .cached()
        .execute(conn)
        .await?;
    Ok(settled == 1)
}

/// Fails the attempt with `code` if it is still pending; how many rows changed.
pub async fn fail_if_pending(conn: &mut AsyncPgConnection, id: TransactionId, code: &str) -> Result<usize, DbError> {
    Ok(diesel::update(t::table.find(id).filter(t::status.eq(TransactionStatus::Pending)))
        .set((t::status.eq(TransactionStatus::Failed), t::decline_code.eq(code)))
        .cached()
        .execute(conn)
        .await?)
}

/// Locks the attempt's row and reads its status.
pub async fn lock_status(
    conn: &mut AsyncPgConnection,
    id: TransactionId,
) -> Result<Option<TransactionStatus>, DbError> {
    Ok(t::table.find(id).for_update().select(t::status).first(conn).await.optional()?)
}

/// Up to `limit` attempts pending since before `cutoff`, oldest first, with their gateway keys.
pub async fn stale_pending(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(TransactionId, String)>, DbError> {
    Ok(t::table
        .filter(t::status.eq(TransactionStatus::Pending))
        .filter(t::created_at.lt(cutoff))
        .order(t::created_at)
        .limit(limit)
        .select((t::id, t::idempotency_key))
        .load(conn)
        .await?)
}

/// The user's attempts, newest first, `limit` at a time after `cursor` (created at, id).
pub async fn history(
    conn: &mut AsyncPgConnection,
    user: UserId,
    limit: i64,
    cursor: Option<(DateTime<Utc>, TransactionId)>,
) -> Result<Vec<TransactionRow>, DbError> {
    let mut query = t::table.filter(t::user_id.eq(user)).into_boxed();
    if let Some((at, id)) = cursor {
        query = query.filter(t::created_at.lt(at).or(t::created_at.eq(at).and(t::id.lt(id))));
    }
    Ok(query
        .order((t::created_at.desc(), t::id.desc()))
        .limit(limit)
        .select(TransactionRow::as_select())
        .load(conn)
        .await?)
}

/// Moves `delta` into (positive) or out of (negative) what is reserved for refunds of the attempt.
pub async fn add_refunded(conn: &mut AsyncPgConnection, id: TransactionId, delta: Decimal) -> Result<(), DbError> {
    diesel::update(t::table.find(id))
        .set(t::refunded_amount.eq(t::refunded_amount + delta))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}
