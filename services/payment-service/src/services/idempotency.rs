//! `Idempotency-Key` for money-moving requests, scoped per user: the first response is stored and replayed byte
//! for byte; the same key with another request is refused; a request still running blocks its key.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::db::schema::idempotency_keys as k;
use crate::error::ServiceError;

/// How long a key remembers its response.
const RETENTION: Duration = Duration::hours(24);
/// How long a request may hold its key before another may take over (a crashed request).
const LOCK: Duration = Duration::seconds(60);

/// What a new request with a key may do.
#[derive(Debug)]
pub enum Begin {
    /// Go ahead: the key is now held by this request.
    Proceed,
    /// The first request finished: replay its response.
    Replay { status: u16, body: Vec<u8> },
}

/// A keyed digest of the request, so the stored fingerprint reveals nothing of the card data in the body.
pub fn fingerprint(secret: &[u8], method_path: &str, body: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(method_path.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[derive(Queryable)]
struct Held {
    request_hash: Vec<u8>,
    status: String,
    response_status: Option<i32>,
    response_body: Option<Vec<u8>>,
    locked_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Claims `key` for this request, or says why not.
pub async fn begin(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    key: &str,
    hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Begin, ServiceError> {
    let inserted = diesel::insert_into(k::table)
        .values((
            k::user_id.eq(user),
            k::key.eq(key),
            k::request_hash.eq(hash),
            k::status.eq("in_progress"),
            k::locked_until.eq(now + LOCK),
            k::expires_at.eq(now + RETENTION),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(Begin::Proceed);
    }
    let held: Held = k::table
        .find((user, key))
        .select((k::request_hash, k::status, k::response_status, k::response_body, k::locked_until, k::expires_at))
        .first(conn)
        .await?;
    if held.expires_at <= now {
        // Expired: the key starts over.
        diesel::update(k::table.find((user, key)))
            .set((
                k::request_hash.eq(hash),
                k::status.eq("in_progress"),
                k::response_status.eq(None::<i32>),
                k::response_body.eq(None::<Vec<u8>>),
                k::locked_until.eq(now + LOCK),
                k::expires_at.eq(now + RETENTION),
            ))
            .execute(conn)
            .await?;
        return Ok(Begin::Proceed);
    }
    if held.request_hash != hash {
        return Err(ServiceError::IdempotencyKeyReused);
    }
    match (held.status.as_str(), held.response_status, held.response_body) {
        ("completed", Some(status), Some(body)) => {
            Ok(Begin::Replay { status: u16::try_from(status).unwrap_or(500), body })
        }
        _ if held.locked_until > now => Err(ServiceError::IdempotencyKeyInUse),
        _ => {
            // The holder died: take the key over (the gateway key makes the charge itself happen once).
            let taken = diesel::update(k::table.find((user, key)).filter(k::locked_until.le(now)))
                .set(k::locked_until.eq(now + LOCK))
                .execute(conn)
                .await?;
            if taken == 1 { Ok(Begin::Proceed) } else { Err(ServiceError::IdempotencyKeyInUse) }
        }
    }
}

/// Stores the final response of the request holding `key`.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    key: &str,
    status: u16,
    body: &[u8],
) -> Result<(), ServiceError> {
    diesel::insert_into(k::table)
        .values((
            k::user_id.eq(user),
            k::key.eq(key),
            k::request_hash.eq(Vec::<u8>::new()),
            k::status.eq("completed"),
            k::response_status.eq(i32::from(status)),
            k::response_body.eq(body),
            k::locked_until.eq(Utc::now()),
            k::expires_at.eq(Utc::now() + RETENTION),
        ))
        .on_conflict((k::user_id, k::key))
        .do_update()
        .set((
            k::status.eq(excluded(k::status)),
            k::response_status.eq(excluded(k::response_status)),
            k::response_body.eq(excluded(k::response_body)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Frees `key` after a failure that may be retried (a dependency was down): nothing is remembered.
pub async fn release(conn: &mut AsyncPgConnection, user: Uuid, key: &str) -> Result<(), ServiceError> {
    diesel::delete(k::table.find((user, key)).filter(k::status.eq("in_progress"))).execute(conn).await?;
    Ok(())
}
