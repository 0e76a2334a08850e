//! Refunds of payments (`refunds`).

use billing_domain::RefundId;
use billing_domain::TransactionId;
use billing_infra::CachedDsl;
use billing_infra::DbError;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::RefundStatus;
use super::models::{NewRefund, RefundRow};
use super::schema::refunds as r;

pub async fn find(conn: &mut AsyncPgConnection, id: RefundId) -> Result<Option<RefundRow>, DbError> {
    Ok(r::table.find(id).select(RefundRow::as_select()).first(conn).await.optional()?)
}

/// The refund, locked until the caller's transaction ends.
pub async fn find_for_update(conn: &mut AsyncPgConnection, id: RefundId) -> Result<Option<RefundRow>, DbError> {
    Ok(r::table.find(id).for_update().select(RefundRow::as_select()).first(conn).await.optional()?)
}

pub async fn insert(conn: &mut AsyncPgConnection, row: &NewRefund<'_>) -> Result<(), DbError> {
    diesel::insert_into(r::table).values(row).cached().execute(conn).await?;
    Ok(())
}

pub async fn mark_succeeded(conn: &mut AsyncPgConnection, id: RefundId, reference: &str) -> Result<(), DbError> {
    diesel::update(r::table.find(id))
        .set((r::status.eq(RefundStatus::Succeeded), r::gateway_reference.eq(reference)))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn mark_failed(conn: &mut AsyncPgConnection, id: RefundId, message: &str) -> Result<(), DbError> {
    diesel::update(r::table.find(id))
        .set((r::status.eq(RefundStatus::Failed), r::failure_message.eq(message)))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// The pending refund the gateway knows by `reference`, or by our idempotency key `key`.
pub async fn pending_by_gateway(
    conn: &mut AsyncPgConnection,
    reference: &str,
    key: Option<&str>,
) -> Result<Option<RefundId>, DbError> {
    let mut query = r::table.filter(r::status.eq(RefundStatus::Pending)).into_boxed();
    query = match key {
        Some(key) => query.filter(r::gateway_reference.eq(reference).or(r::idempotency_key.eq(key))),
        None => query.filter(r::gateway_reference.eq(reference)),
    };
    Ok(query.select(r::id).first(conn).await.optional()?)
}

/// The refunds of `payments`, newest first.
pub async fn of_transactions(
    conn: &mut AsyncPgConnection,
    payments: &[TransactionId],
) -> Result<Vec<RefundRow>, DbError> {
    Ok(r::table
        .filter(r::transaction_id.eq_any(payments))
        .order((r::created_at.desc(), r::id.desc()))
        .select(RefundRow::as_select())
        .load(conn)
        .await?)
}
