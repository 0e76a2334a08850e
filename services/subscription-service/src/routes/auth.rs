//! `/v1/auth`: register, login, refresh, me.

use actix_web::{HttpRequest, HttpResponse, web};
use billing_http::rfc3339;
use billing_http::{AdminUser, ApiError, AuthUser, Json, created, ok};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::services::auth::{self, Registration};
use crate::services::auth::{Tokens, UserRow};
use crate::state::AppState;

fn client_ip(state: &AppState, req: &HttpRequest) -> String {
    billing_http::client_ip::client_ip(req, &state.infra.settings.limits.trusted_proxies)
}

/// Create an account and receive tokens.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterBody,
    responses(
        (status = 201, description = "Account created", body = TokensDto),
        (status = 409, description = "`email_taken`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: bad email, weak or common password, unknown field", body = billing_http::error::ErrorEnvelope),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = billing_http::error::ErrorEnvelope)))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = Registration {
        email: body.email,
        password: body.password,
        first_name: body.first_name,
        last_name: body.last_name,
    };
    let tokens = auth::register(&state, input, &client_ip(&state, &req)).await?;
    Ok(created(TokensDto::from(tokens), "account created"))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = TokensDto),
        (status = 401, description = "`invalid_credentials` (the same for an unknown email and a wrong password)", body = billing_http::error::ErrorEnvelope),
        (status = 429, description = "`rate_limited` after 10 failures per email and address in 15 minutes", body = billing_http::error::ErrorEnvelope)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let tokens = auth::login(&state, &body.email, body.password, &client_ip(&state, &req)).await?;
    Ok(ok(TokensDto::from(tokens), "signed in"))
}

/// Exchange a refresh token for a new pair; the old one stops working, and reusing it revokes the family.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses(
        (status = 200, description = "A new token pair", body = TokensDto),
        (status = 401, description = "`invalid_refresh_token`", body = billing_http::error::ErrorEnvelope)))]
pub async fn refresh(state: web::Data<AppState>, body: Json<RefreshBody>) -> Result<HttpResponse, ApiError> {
    let tokens = auth::refresh(&state, &body.into_inner().refresh_token).await?;
    Ok(ok(TokensDto::from(tokens), "tokens refreshed"))
}

/// The signed-in user.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserDto),
        (status = 401, description = "Missing, invalid or expired token", body = billing_http::error::ErrorEnvelope)))]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let row = auth::me(&state, user.id.into()).await?;
    Ok(ok(UserDto::from(row), "current user"))
}

/// Change a user's role (administrators). The user's current access tokens stop working within
/// `billing_http::auth::REVOCATION_CACHE` (5 s) in every process; tokens issued afterwards carry the new role.
#[utoipa::path(put, path = "/v1/admin/users/{id}/role", tag = "admin", security(("bearer" = [])), request_body = RoleBody,
    params(("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user with the new role", body = UserDto),
        (status = 403, description = "Not an administrator", body = billing_http::error::ErrorEnvelope),
        (status = 404, description = "`user_not_found`", body = billing_http::error::ErrorEnvelope)))]
pub async fn set_role(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<Uuid>,
    body: Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let row = auth::set_role(&state, id.into_inner().into(), body.into_inner().role).await?;
    Ok(ok(UserDto::from(row), "role changed"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8–128 characters with a letter and a digit; the 10,000 most common passwords are refused.
    #[schema(
        example = "correct horse 42",
        min_length = 8,
        max_length = 128,
        pattern = r"[A-Za-z][\s\S]*[0-9]|[0-9][\s\S]*[A-Za-z]"
    )]
    pub password: String,
    /// 1–100 characters, not only spaces.
    #[schema(example = "Ada", min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: Option<String>,
    /// 1–100 characters, not only spaces.
    #[schema(example = "Lovelace", min_length = 1, max_length = 100, pattern = r"\S")]
    pub last_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "correct horse 42")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(value_type = String, example = "user", pattern = "^(user|admin)$")]
    pub role: billing_auth::Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensDto {
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    #[schema(example = 3600)]
    pub expires_in: u64,
    pub refresh_token: String,
    pub user_id: Uuid,
    pub email: String,
}

impl From<Tokens> for TokensDto {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            user_id: t.user_id.into(),
            email: t.email,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[schema(example = "user")]
    pub role: String,
    pub created_at: String,
}

impl From<UserRow> for UserDto {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id.into(),
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            role: u.role,
            created_at: rfc3339(u.created_at),
        }
    }
}
