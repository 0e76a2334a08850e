//! Registration, login, token refresh with rotation, and the current user.

use std::collections::BTreeMap;
use std::time::Duration;

use billing_auth::{Role, refresh};
use billing_domain::UserId;
use billing_http::ratelimit::Limit;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db;
pub use crate::db::models::UserRow;
use crate::db::models::{NewRefreshToken, NewUser};
use crate::error::ServiceError;
use crate::state::AppState;

/// Login attempts allowed per email and client address before 429 (a success clears the count, so only failures
/// add up); the number is `RATE_LIMIT_LOGIN_ATTEMPTS_PER_15_MIN`.
fn login_attempts(state: &AppState) -> Limit {
    Limit { max: state.infra.settings.limits.login_attempts_per_15_min, window: Duration::from_secs(15 * 60) }
}

/// Registrations allowed per client address (`RATE_LIMIT_REGISTRATIONS_PER_HOUR`).
fn registrations(state: &AppState) -> Limit {
    Limit { max: state.infra.settings.limits.registrations_per_hour, window: Duration::from_secs(60 * 60) }
}
/// How long a refresh token lives.
const REFRESH_TTL: chrono::Duration = chrono::Duration::days(30);

/// A new access token and refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user_id: UserId,
    pub email: String,
}

/// A registration request, before validation.
#[derive(Debug)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Trims and lower-cases an email, or says what is wrong with it.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else { return Err("not an email address") };
    let valid = !local.is_empty()
        && email.len() <= 254
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(email) } else { Err("not an email address") }
}

fn check_name(fields: &mut BTreeMap<String, String>, key: &str, value: &Option<String>) {
    if let Some(v) = value
        && (v.trim().is_empty() || v.chars().count() > 100)
    {
        fields.insert(key.to_owned(), "must be 1 to 100 characters".to_owned());
    }
}

fn client_key(email: &str, ip: &str) -> String {
    // The email is hashed so the limiter's keys carry no personal data.
    format!("login:{}:{ip}", hex::encode(&Sha256::digest(email.as_bytes())[..12]))
}

/// Creates an account and signs it in.
pub async fn register(state: &AppState, input: Registration, ip: &str) -> Result<Tokens, ServiceError> {
    let mut fields = BTreeMap::new();
    let email = normalize_email(&input.email).map_err(|e| fields.insert("email".into(), e.into())).ok();
    if let Err(e) = billing_auth::check_policy(&input.password) {
        fields.insert("password".into(), e.to_string());
    }
    check_name(&mut fields, "first_name", &input.first_name);
    check_name(&mut fields, "last_name", &input.last_name);
    let Some(email) = email.filter(|_| fields.is_empty()) else { return Err(ServiceError::Validation(fields)) };

    if let Err(retry_after_secs) = state.limiter.hit(&format!("register:{ip}"), registrations(state)).await? {
        return Err(ServiceError::RateLimited { retry_after_secs });
    }
    let hash = billing_auth::hash_password(input.password).await?;
    let user = NewUser {
        id: UserId::new(),
        email: &email,
        password_hash: &hash,
        first_name: input.first_name.as_deref().map(str::trim),
        last_name: input.last_name.as_deref().map(str::trim),
        role: Role::User.as_str(),
    };
    let mut conn = state.conn().await?;
    let row = db::users::insert(&mut conn, &user).await.map_err(|e| match e {
        billing_infra::DbError::UniqueViolation { .. } => ServiceError::EmailTaken,
        other => other.into(),
    })?;
    drop(conn);
    tracing::info!(user_id = %row.id, "user registered");
    issue_tokens(state, &row, Uuid::now_v7()).await
}

/// Signs in. Unknown email and wrong password get the same answer after the same work.
pub async fn login(state: &AppState, raw_email: &str, password: String, ip: &str) -> Result<Tokens, ServiceError> {
    // A storm of logins beyond what the hashing threads can take is refused before anything else is spent on it
    // (what is past this point is counted against the rate limit and reads the database).
    if billing_auth::hashing_saturated() {
        return Err(billing_auth::PasswordError::Busy.into());
    }
    let email = normalize_email(raw_email).unwrap_or_else(|_| raw_email.trim().to_lowercase());
    let key = client_key(&email, ip);
    // Every attempt is counted, atomically, before the password is checked: a burst of concurrent guesses cannot
    // all pass a check made before any of them failed. A success clears the count.
    if let Err(retry_after_secs) = state.limiter.hit(&key, login_attempts(state)).await? {
        return Err(ServiceError::RateLimited { retry_after_secs });
    }
    let user = db::users::find_by_email(&mut *state.conn().await?, &email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !billing_auth::verify_password(password, hash).await? {
        return Err(ServiceError::InvalidCredentials);
    }
    let Some(user) = user else { return Err(ServiceError::InvalidCredentials) };
    state.limiter.reset(&key).await?;
    issue_tokens(state, &user, Uuid::now_v7()).await
}

// Credentials live in real time, not on the billing clock: a test clock moved a year ahead (as Stripe's test clocks
// do) must not expire every session, so tokens are issued, refreshed and verified by the machine's time.

/// Exchanges a refresh token for a new pair. The token is used up; presenting it again revokes its family.
pub async fn refresh(state: &AppState, token: &str) -> Result<Tokens, ServiceError> {
    let digest = refresh::digest(token.trim());
    let now = Utc::now();
    let outcome = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            // `Err(Some(user))`: a rotated token came back, so its user's tokens are revoked once this commits.
            let Some(row) = db::users::find_refresh_token_for_update(conn, &digest).await? else {
                return Ok(Err(None));
            };
            if row.rotated_at.is_some() {
                let revoked = db::users::revoke_family(conn, row.family_id, now).await?;
                tracing::warn!(user_id = %row.user_id, revoked, "refresh token reused: token family revoked");
                return Ok(Err(Some(row.user_id)));
            }
            if row.revoked_at.is_some() || row.expires_at <= now {
                return Ok(Err(None));
            }
            db::users::mark_rotated(conn, row.id, now).await?;
            let user = db::users::find(conn, row.user_id).await?.ok_or(ServiceError::UserNotFound)?;
            Ok(Ok((user, row.family_id)))
        })
        .await?;
    // The revocation above must commit even though the caller gets an error.
    let (user, family) = match outcome {
        Ok(found) => found,
        Err(reused_by) => {
            // A stolen refresh token may already have minted access tokens: they stop working too.
            if let Some(user) = reused_by {
                state.revocations.revoke_all(user.into()).await?;
            }
            return Err(ServiceError::InvalidRefreshToken);
        }
    };
    issue_tokens(state, &user, family).await
}

/// Gives `user` the role `role` and voids the access tokens they hold, so a demoted administrator loses the
/// role everywhere within [`billing_http::auth::REVOCATION_CACHE`]; new tokens carry the new role.
pub async fn set_role(state: &AppState, user: UserId, role: Role) -> Result<UserRow, ServiceError> {
    let row = db::users::set_role(&mut *state.conn().await?, user, role.as_str())
        .await?
        .ok_or(ServiceError::AccountNotFound)?;
    state.revocations.revoke_all(user.into()).await?;
    tracing::warn!(user_id = %user, role = role.as_str(), "role changed: the user's access tokens were revoked");
    Ok(row)
}

/// The user behind a token.
pub async fn me(state: &AppState, id: UserId) -> Result<UserRow, ServiceError> {
    db::users::find(&mut *state.conn().await?, id).await?.ok_or(ServiceError::UserNotFound)
}

async fn issue_tokens(state: &AppState, user: &UserRow, family: Uuid) -> Result<Tokens, ServiceError> {
    let now = Utc::now();
    let role = Role::parse(&user.role).unwrap_or(Role::User);
    let access_token = state.jwt.issue(user.id.into(), role, now).map_err(ServiceError::internal)?;
    let (refresh_token, digest) = refresh::generate();
    let expires_at: DateTime<Utc> = now + REFRESH_TTL;
    let row =
        NewRefreshToken { id: Uuid::now_v7(), user_id: user.id, family_id: family, token_hash: &digest, expires_at };
    db::users::insert_refresh_token(&mut *state.conn().await?, &row).await?;
    Ok(Tokens {
        access_token,
        expires_in: state.jwt.ttl().as_secs(),
        refresh_token,
        user_id: user.id,
        email: user.email.clone(),
    })
}
