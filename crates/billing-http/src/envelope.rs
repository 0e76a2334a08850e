//! The success envelope: `{"success": true, "data": …, "message": …, "timestamp": …}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every successful response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiResponse<T> {
    pub success: bool,
    pub data: T,
    pub message: String,
    #[schema(example = "2026-01-01T00:00:00Z")]
    pub timestamp: String,
}

impl<T: Serialize> ApiResponse<T> {
    /// Wraps `data` with a message.
    pub fn new(data: T, message: impl Into<String>) -> Self {
        Self { success: true, data, message: message.into(), timestamp: crate::rfc3339(chrono::Utc::now()) }
    }

    /// The response with `status`.
    pub fn respond(&self, status: StatusCode) -> HttpResponse {
        HttpResponse::build(status).json(self)
    }
}

/// 200 with `data` in the envelope.
pub fn ok<T: Serialize>(data: T, message: &str) -> HttpResponse {
    ApiResponse::new(data, message).respond(StatusCode::OK)
}

/// 201 with `data` in the envelope.
pub fn created<T: Serialize>(data: T, message: &str) -> HttpResponse {
    ApiResponse::new(data, message).respond(StatusCode::CREATED)
}
