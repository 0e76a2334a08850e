//! Stored `Idempotency-Key`s (`idempotency_keys`), one per user and key.

use billing_domain::UserId;
use billing_infra::CachedDsl;
use billing_infra::DbError;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::KeyStatus;
use super::schema::idempotency_keys as k;

/// A key as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = k, check_for_backend(diesel::pg::Pg))]
pub struct KeyRow {
    pub request_hash: Vec<u8>,
    pub status: KeyStatus,
    pub response_status: Option<i32>,
    pub response_body: Option<Vec<u8>>,
    pub locked_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Holds a new key for a request; false when the key exists.
pub async fn insert_held(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    hash: &[u8],
    locked_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(k::table)
        .values((
            k::user_id.eq(user),
            k::key.eq(key),
            k::request_hash.eq(hash),
            k::status.eq(KeyStatus::InProgress),
            k::locked_until.eq(locked_until),
            k::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

pub async fn find(conn: &mut AsyncPgConnection, user: UserId, key: &str) -> Result<KeyRow, DbError> {
    Ok(k::table.find((user, key)).select(KeyRow::as_select()).first(conn).await?)
}

/// An expired key starts over, held for a new request.
pub async fn restart(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    hash: &[u8],
    locked_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::update(k::table.find((user, key)))
        .set((
            k::request_hash.eq(hash),
            k::status.eq(KeyStatus::InProgress),
            k::response_status.eq(None::<i32>),
            k::response_body.eq(None::<Vec<u8>>),
            k::locked_until.eq(locked_until),
            k::expires_at.eq(expires_at),
        ))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes over a key whose holder's lock ran out before `now`; false when someone else did first.
pub async fn take_over(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let taken = diesel::update(k::table.find((user, key)).filter(k::locked_until.le(now)))
        .set(k::locked_until.eq(locked_until))
        .cached()
        .execute(conn)
        .await?;
    Ok(taken == 1)
}

/// Stores the final response of the request holding the key.
pub async fn store_response(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    status: i32,
    body: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::insert_into(k::table)
        .values((
            k::user_id.eq(user),
            k::key.eq(key),
            k::request_hash.eq(Vec::<u8>::new()),
            k::status.eq(KeyStatus::Completed),
            k::response_status.eq(status),
            k::response_body.eq(body),
            k::locked_until.eq(now),
            k::expires_at.eq(expires_at),
        ))
        .on_conflict((k::user_id, k::key))
        .do_update()
        .set((
            k::status.eq(excluded(k::status)),
            k::response_status.eq(excluded(k::response_status)),
            k::response_body.eq(excluded(k::response_body)),
        ))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets a key still in progress.
pub async fn delete_in_progress(conn: &mut AsyncPgConnection, user: UserId, key: &str) -> Result<(), DbError> {
    diesel::delete(k::table.find((user, key)).filter(k::status.eq(KeyStatus::InProgress))).execute(conn).await?;
    Ok(())
}
