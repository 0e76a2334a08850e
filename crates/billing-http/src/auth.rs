//! The authenticated caller, from `Authorization: Bearer <JWT>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use billing_auth::jwt::MAX_TOKEN_LIFETIME_SECS;
use billing_auth::{Claims, JwtVerifier, Role, TokenError};
use billing_infra::{Redis, SharedClock};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use crate::ApiError;

/// How long a process trusts what it last read of a user's revocation marker: an access token of a user whose
/// tokens were revoked (a reused refresh token, a role change) stops working everywhere within this time.
pub const REVOCATION_CACHE: Duration = Duration::from_secs(5);
// Bounds the per-process cache; past it the cache starts over (it only saves Redis round trips).
const REVOCATION_CACHE_ENTRIES: usize = 100_000;

/// Per-user markers "every token issued before this instant is void", kept in Redis so every process of both
/// services sees them. A marker outlives the longest token, then expires by itself.
#[derive(Clone)]
pub struct Revocations {
    redis: Redis,
    cache: Arc<Mutex<HashMap<Uuid, (Instant, i64)>>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations").finish_non_exhaustive()
    }
}

fn marker_key(user: Uuid) -> String {
    format!("auth:revoked_before:{user}")
}

impl Revocations {
    /// Markers under the process's Redis prefix.
    pub fn new(redis: Redis) -> Self {
        Self { redis, cache: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Voids every access token of `user` issued until now (real time: tokens are ordered by their UUIDv7 `jti`).
    pub async fn revoke_all(&self, user: Uuid) -> Result<(), redis::RedisError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let ttl = u64::try_from(MAX_TOKEN_LIFETIME_SECS).unwrap_or(86_400) + 60;
        let mut conn = self.redis.conn();
        redis::cmd("SET")
            .arg(self.redis.key(&marker_key(user)))
            .arg(now_ms)
            .arg("EX")
            .arg(ttl)
            .exec_async(&mut conn)
            .await?;
        self.remember(user, now_ms);
        Ok(())
    }

    /// The instant (unix ms) before which `user`'s tokens are void; 0 when they never were.
    pub async fn revoked_before(&self, user: Uuid) -> Result<i64, redis::RedisError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((read_at, marker)) = cache.get(&user)
            && read_at.elapsed() < REVOCATION_CACHE
        {
            return Ok(*marker);
        }
        let mut conn = self.redis.conn();
        let marker: Option<i64> =
            redis::cmd("GET").arg(self.redis.key(&marker_key(user))).query_async(&mut conn).await?;
        let marker = marker.unwrap_or(0);
        self.remember(user, marker);
        Ok(marker)
    }

    fn remember(&self, user: Uuid, marker: i64) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= REVOCATION_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(user, (Instant::now(), marker));
        }
    }
}

/// What the extractors need to accept a token: the public key, the clock tokens are judged by (the machine's:
/// sessions live in real time even when the billing clock is moved), and the revocation markers.
#[derive(Clone)]
pub struct Authenticator {
    pub verifier: JwtVerifier,
    pub clock: SharedClock,
    pub revocations: Revocations,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

/// A caller with a valid access token. Routes that take it answer 401 (with `WWW-Authenticate: Bearer`)
/// when the token is missing, malformed, expired, revoked, unsigned, or not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
}

impl AuthUser {
    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn verify(req: &HttpRequest) -> Result<(Authenticator, Claims), ApiError> {
    let Some(auth) = req.app_data::<web::Data<Authenticator>>() else {
        return Err(ApiError::internal(&"Authenticator missing from app data"));
    };
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
        _ => return Err(ApiError::unauthorized("unauthorized", "a bearer access token is required")),
    };
    match auth.verifier.verify(token, auth.clock.now()) {
        Ok(claims) => Ok((auth.get_ref().clone(), claims)),
        Err(TokenError::Expired) => Err(ApiError::unauthorized("token_expired", "the access token has expired")),
        Err(_) => Err(ApiError::unauthorized("invalid_token", "the access token is invalid")),
    }
}

async fn authenticate(verified: Result<(Authenticator, Claims), ApiError>) -> Result<AuthUser, ApiError> {
    let (auth, claims) = verified?;
    let revoked_before = auth.revocations.revoked_before(claims.sub).await.map_err(|e| ApiError::unavailable(&e))?;
    if claims.issued_at_ms() <= revoked_before {
        return Err(ApiError::unauthorized("token_revoked", "the access token was revoked; sign in again"));
    }
    Ok(AuthUser { id: claims.sub, role: claims.role })
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(verify(req)))
    }
}

/// An authenticated administrator; anyone else authenticated gets 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = verify(req);
        Box::pin(async move {
            let user = authenticate(verified).await?;
            if user.is_admin() {
                Ok(AdminUser(user))
            } else {
                Err(ApiError::forbidden("forbidden", "this route is for administrators"))
            }
        })
    }
}
