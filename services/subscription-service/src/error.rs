//! The service's one error type, and its exhaustive mapping to HTTP.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use billing_domain::TransitionError;
use billing_http::ApiError;
use billing_infra::DbError;
use serde_json::json;

/// Everything a service function of the subscription service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed")]
    Validation(BTreeMap<String, String>),
    #[error("email already registered")]
    EmailTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("plan not found")]
    PlanNotFound,
    /// A plan that exists but is not of the kind the route sells (a trial plan bought, a paid plan trialled): to
    /// that route it does not exist, as an inactive plan does not; the message says where to go instead.
    #[error("{0}")]
    PlanNotOfferedHere(&'static str),
    #[error("plan code taken")]
    PlanCodeTaken,
    #[error("subscription not found")]
    SubscriptionNotFound,
    #[error("invoice not found")]
    InvoiceNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("no such account")]
    AccountNotFound,
    #[error("too many password checks in progress")]
    Busy,
    #[error("already subscribed")]
    AlreadySubscribed,
    #[error("trial already used")]
    TrialAlreadyUsed,
    #[error("not allowed in this state: {0}")]
    InvalidState(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("concurrent update")]
    ConcurrentUpdate,
    #[error("usage limit exceeded")]
    UsageLimitExceeded { feature: String, current: i64, limit: i64, reset_at: String, retry_after_secs: u64 },
    #[error("feature not in plan")]
    FeatureNotInPlan(String),
    #[error("no active subscription")]
    NoActiveSubscription,
    #[error("the subscription is paused")]
    SubscriptionPaused,
    #[error("no such period")]
    PeriodNotFound,
    #[error("no subscription with an upcoming invoice")]
    NothingUpcoming,
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// One invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(BTreeMap::from([(field.to_owned(), message.into())]))
    }

    /// A failure that means a bug or a broken invariant, not bad input: the caller sees a 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

impl From<DbError> for ServiceError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(e) => Self::Unavailable(e),
            DbError::Conflict => Self::ConcurrentUpdate,
            // Unique violations that mean something are mapped where they can happen; any other is a bug.
            DbError::NotFound
            | DbError::UniqueViolation { .. }
            | DbError::CheckViolation { .. }
            | DbError::Other(_) => Self::Internal(err.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::from(err).into()
    }
}

impl From<billing_auth::PasswordError> for ServiceError {
    fn from(err: billing_auth::PasswordError) -> Self {
        match err {
            billing_auth::PasswordError::Busy => Self::Busy,
            other => Self::internal(other),
        }
    }
}

impl From<redis::RedisError> for ServiceError {
    fn from(err: redis::RedisError) -> Self {
        Self::Unavailable(format!("redis: {err}"))
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Validation(fields) => ApiError::validation(fields),
            ServiceError::EmailTaken => ApiError::conflict("email_taken", "an account with this email already exists"),
            ServiceError::InvalidCredentials => {
                ApiError::unauthorized("invalid_credentials", "invalid email or password")
            }
            ServiceError::InvalidRefreshToken => {
                ApiError::unauthorized("invalid_refresh_token", "the refresh token is invalid, expired or already used")
            }
            ServiceError::RateLimited { retry_after_secs } => ApiError::rate_limited(retry_after_secs),
            ServiceError::PlanNotFound => ApiError::not_found("plan_not_found", "no such plan"),
            ServiceError::PlanNotOfferedHere(message) => ApiError::not_found("plan_not_found", message),
            ServiceError::PlanCodeTaken => {
                ApiError::conflict("plan_code_taken", "a plan with this code already exists")
            }
            ServiceError::SubscriptionNotFound => ApiError::not_found("subscription_not_found", "no such subscription"),
            ServiceError::InvoiceNotFound => ApiError::not_found("invoice_not_found", "no such invoice"),
            ServiceError::UserNotFound => ApiError::unauthorized("invalid_token", "the account no longer exists"),
            ServiceError::AccountNotFound => ApiError::not_found("user_not_found", "no such user"),
            ServiceError::Busy => ApiError::busy(1),
            ServiceError::AlreadySubscribed => {
                ApiError::conflict("already_subscribed", "the user already has a current subscription")
            }
            ServiceError::TrialAlreadyUsed => {
                ApiError::conflict("trial_already_used", "the user has already had a trial")
            }
            ServiceError::InvalidState(reason) => ApiError::conflict("invalid_state", reason),
            ServiceError::Transition(t) => ApiError::conflict("invalid_state", t.to_string()),
            ServiceError::ConcurrentUpdate => ApiError::conflict(
                "concurrent_update",
                "the subscription was changed by another request; reload it and try again",
            ),
            ServiceError::UsageLimitExceeded { feature, current, limit, reset_at, retry_after_secs } => {
                // Like every 429, it says when to come back: the period's end, when the count resets.
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "usage_limit_exceeded",
                    "the usage limit of this feature is reached for the current period",
                )
                .with_header(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(retry_after_secs),
                )
                .with_details(
                    json!({"feature_name": feature, "current_usage": current, "limit": limit, "reset_at": reset_at}),
                )
            }
            ServiceError::FeatureNotInPlan(feature) => {
                ApiError::forbidden("feature_not_in_plan", "the current plan does not meter this feature")
                    .with_details(json!({"feature_name": feature}))
            }
            ServiceError::NoActiveSubscription => {
                ApiError::forbidden("no_active_subscription", "the user has no subscription giving access")
            }
            ServiceError::SubscriptionPaused => ApiError::forbidden(
                "subscription_paused",
                "the subscription is paused: resume it (POST /v1/subscriptions/{id}/resume) to use its features",
            ),
            ServiceError::PeriodNotFound => ApiError::not_found(
                "period_not_found",
                "no period of the caller's subscriptions starts at period_start (see its invoices' periods)",
            ),
            ServiceError::NothingUpcoming => ApiError::not_found(
                "no_active_subscription",
                "no active or past-due subscription: nothing will be invoiced at a period end",
            ),
            ServiceError::Unavailable(cause) => ApiError::unavailable(&cause),
            ServiceError::Internal(cause) => ApiError::internal(&cause),
        }
    }
}
