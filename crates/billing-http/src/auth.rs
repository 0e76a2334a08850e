//! The authenticated caller, from `Authorization: Bearer <JWT>`.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use billing_auth::{JwtVerifier, Role, TokenError};
use uuid::Uuid;

use crate::ApiError;

/// A caller with a valid access token. Routes that take it answer 401 (with `WWW-Authenticate: Bearer`)
/// when the token is missing, malformed, expired, unsigned, or not ours.
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

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let Some(verifier) = req.app_data::<web::Data<JwtVerifier>>() else {
        return Err(ApiError::internal(&"JwtVerifier missing from app data"));
    };
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
        _ => return Err(ApiError::unauthorized("unauthorized", "a bearer access token is required")),
    };
    match verifier.verify(token) {
        Ok(claims) => Ok(AuthUser { id: claims.sub, role: claims.role }),
        Err(TokenError::Expired) => Err(ApiError::unauthorized("token_expired", "the access token has expired")),
        Err(_) => Err(ApiError::unauthorized("invalid_token", "the access token is invalid")),
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// An authenticated administrator; anyone else authenticated gets 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|user| {
            if user.is_admin() {
                Ok(AdminUser(user))
            } else {
                Err(ApiError::forbidden("forbidden", "this route is for administrators"))
            }
        }))
    }
}
