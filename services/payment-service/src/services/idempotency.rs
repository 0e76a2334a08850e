//! `Idempotency-Key` for money-moving requests, scoped per user: the first response is stored and replayed byte
//! for byte; the same key with another request is refused; a request still running blocks its key.

use billing_domain::UserId;
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncPgConnection;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::db;
use crate::db::KeyStatus;
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

/// Claims `key` for this request, or says why not.
pub async fn begin(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Begin, ServiceError> {
    if db::idempotency::insert_held(conn, user, key, hash, now + LOCK, now + RETENTION).await? {
        return Ok(Begin::Proceed);
    }
    let held = db::idempotency::find(conn, user, key).await?;
    if held.expires_at <= now {
        // Expired: the key starts over.
        db::idempotency::restart(conn, user, key, hash, now + LOCK, now + RETENTION).await?;
        return Ok(Begin::Proceed);
    }
    if held.request_hash != hash {
        return Err(ServiceError::IdempotencyKeyReused);
    }
    match (held.status, held.response_status, held.response_body) {
        (KeyStatus::Completed, Some(status), Some(body)) => {
            Ok(Begin::Replay { status: u16::try_from(status).unwrap_or(500), body })
        }
        _ if held.locked_until > now => Err(ServiceError::IdempotencyKeyInUse),
        // The holder died: take the key over (the gateway key makes the charge itself happen once).
        _ if db::idempotency::take_over(conn, user, key, now, now + LOCK).await? => Ok(Begin::Proceed),
        _ => Err(ServiceError::IdempotencyKeyInUse),
    }
}

/// Stores the final response of the request holding `key`.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    status: u16,
    body: &[u8],
) -> Result<(), ServiceError> {
    let now = Utc::now();
    Ok(db::idempotency::store_response(conn, user, key, i32::from(status), body, now, now + RETENTION).await?)
}

/// Frees `key` after a failure that may be retried (a dependency was down): nothing is remembered.
pub async fn release(conn: &mut AsyncPgConnection, user: UserId, key: &str) -> Result<(), ServiceError> {
    Ok(db::idempotency::delete_in_progress(conn, user, key).await?)
}
