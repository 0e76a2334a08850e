//! Users and refresh tokens.

use billing_auth::Role;
use billing_domain::UserId;
use billing_infra::CachedDsl;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{NewRefreshToken, NewUser, RefreshTokenRow, UserRow};
use super::schema::{refresh_tokens, users};
use billing_infra::DbError;

/// Inserts a user; `UniqueViolation { constraint: "users_email_key" }` when the email is taken.
pub async fn insert(conn: &mut AsyncPgConnection, user: &NewUser<'_>) -> Result<UserRow, DbError> {
    Ok(diesel::insert_into(users::table)
        .values(user)
        .returning(UserRow::as_returning())
        .cached()
        .get_result(conn)
        .await?)
}

/// The user with this email (case-insensitive).
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table.filter(users::email.eq(email)).select(UserRow::as_select()).first(conn).await.optional()?)
}

/// The user with this id.
pub async fn find(conn: &mut AsyncPgConnection, id: UserId) -> Result<Option<UserRow>, DbError> {
    Ok(users::table.find(id).select(UserRow::as_select()).first(conn).await.optional()?)
}

/// Makes an existing user an administrator; returns false when there is no such user.
pub async fn promote_to_admin(conn: &mut AsyncPgConnection, id: UserId) -> Result<bool, DbError> {
    let n =
        diesel::update(users::table.find(id)).set(users::role.eq(Role::Admin.as_str())).cached().execute(conn).await?;
    Ok(n == 1)
}

/// Sets a user's role; `None` when there is no such user.
pub async fn set_role(conn: &mut AsyncPgConnection, id: UserId, role: &str) -> Result<Option<UserRow>, DbError> {
    Ok(diesel::update(users::table.find(id))
        .set(users::role.eq(role))
        .returning(UserRow::as_returning())
        .cached()
        .get_result(conn)
        .await
        .optional()?)
}

/// Stores a refresh token's digest.
pub async fn insert_refresh_token(conn: &mut AsyncPgConnection, token: &NewRefreshToken<'_>) -> Result<(), DbError> {
    diesel::insert_into(refresh_tokens::table).values(token).cached().execute(conn).await?;
    Ok(())
}

/// The refresh token with this digest, locked for the rest of the transaction.
pub async fn find_refresh_token_for_update(
    conn: &mut AsyncPgConnection,
    digest: &[u8],
) -> Result<Option<RefreshTokenRow>, DbError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(digest))
        .select(RefreshTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a token as used.
pub async fn mark_rotated(conn: &mut AsyncPgConnection, id: Uuid, at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(refresh_tokens::table.find(id))
        .set(refresh_tokens::rotated_at.eq(at))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every token of a family (a rotated token was presented again: it was stolen or leaked).
pub async fn revoke_family(conn: &mut AsyncPgConnection, family: Uuid, at: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(diesel::update(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family)))
        .filter(refresh_tokens::revoked_at.is_null())
        .set(refresh_tokens::revoked_at.eq(at))
        .cached()
        .execute(conn)
        .await?)
}
