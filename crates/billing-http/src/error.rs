//! `ApiError`: what a route returns on failure, rendered as the error envelope.
//!
//! Layers: repositories return `billing_infra::DbError`, services return their own `thiserror` enum, and each
//! service maps that enum to `ApiError` with an exhaustive `match`. Only here does an error become HTTP. A 5xx
//! never carries its cause to the client: the cause is logged once, here, with the request id.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// Marks a response whose body is final, so the request-context middleware leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct FinalBody;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    #[schema(example = false)]
    pub success: bool,
    /// Human-readable text; safe to show.
    #[schema(example = "request validation failed")]
    pub error: String,
    /// Stable machine code in snake_case.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// Structured details, e.g. `{"fields": {"email": "not an email"}}` for validation errors.
    #[schema(value_type = Object)]
    pub details: Value,
    #[schema(example = "2026-01-01T00:00:00Z")]
    pub timestamp: String,
    #[schema(example = "0192f5e0-6c1a-7d4e-9b0a-3f1e2d3c4b5a")]
    pub request_id: String,
}

/// An HTTP error with a stable `code`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    details: Value,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `status`, machine `code` and human `message`.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code: code.into(), message: message.into(), details: json!({}), headers: Vec::new() }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Adds a response header (e.g. `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The details object.
    pub fn details(&self) -> &Value {
        &self.details
    }

    /// 400 for a body that is not JSON.
    pub fn malformed_json(reason: impl fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON body: {reason}"))
    }

    /// 422 listing every bad field: `details.fields = {field: message}`.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "request validation failed")
            .with_details(json!({ "fields": fields }))
    }

    /// 422 for one bad field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(BTreeMap::from([(field.into(), message.into())]))
    }

    /// 404 with a specific code (`subscription_not_found`, …).
    pub fn not_found(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
            .with_header(actix_web::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 for a body over the limit.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {} bytes", crate::BODY_LIMIT_BYTES),
        )
    }

    /// 429 with `Retry-After` in seconds.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let value =
            HeaderValue::from_str(&retry_after_secs.max(1).to_string()).unwrap_or(HeaderValue::from_static("1"));
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests, try again later")
            .with_header(actix_web::http::header::RETRY_AFTER, value)
            .with_details(json!({ "retry_after_seconds": retry_after_secs.max(1) }))
    }

    /// 503 with `Retry-After`: this process is at its bound for expensive work (password hashing) and sheds the
    /// excess instead of queueing it without limit.
    pub fn busy(retry_after_secs: u64) -> Self {
        let value =
            HeaderValue::from_str(&retry_after_secs.max(1).to_string()).unwrap_or(HeaderValue::from_static("1"));
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_busy", "the server is busy, try again shortly")
            .with_header(actix_web::http::header::RETRY_AFTER, value)
    }

    /// 503: a dependency is down. The cause is logged, never returned.
    pub fn unavailable(cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a dependency is unavailable, try again later",
        )
        .with_header(actix_web::http::header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 500. The cause is logged here, once, and never returned.
    pub fn internal(cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::internal_silent()
    }

    /// 500 without logging (the caller already logged the cause).
    pub fn internal_silent() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal server error")
    }

    /// The generic envelope for a status that actix produced itself (unknown route, wrong method…).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message): (&'static str, &'static str) = match status.as_u16() {
            401 => ("unauthorized", "authentication required"),
            403 => ("forbidden", "not allowed"),
            404 => ("not_found", "no such route"),
            405 => ("method_not_allowed", "method not allowed on this route"),
            406 => ("not_acceptable", "not acceptable"),
            408 => ("request_timeout", "request timed out"),
            413 => ("payload_too_large", "request body too large"),
            414 => ("uri_too_long", "URI too long"),
            415 => ("unsupported_media_type", "unsupported media type"),
            422 => ("validation_failed", "request validation failed"),
            429 => ("rate_limited", "too many requests"),
            503 => ("service_unavailable", "service unavailable"),
            // 400 and any other client error.
            400..=499 => ("bad_request", "bad request"),
            _ => ("internal_error", "internal server error"),
        };
        Self::new(status, code, message)
    }

    /// The envelope body for this error.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            success: false,
            error: self.message.to_string(),
            code: self.code.to_string(),
            details: self.details.clone(),
            timestamp: crate::rfc3339(chrono::Utc::now()),
            request_id: crate::current_request_id().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            builder.insert_header((name.clone(), value.clone()));
        }
        let mut response = builder.json(self.envelope());
        response.extensions_mut().insert(FinalBody);
        response
    }
}
