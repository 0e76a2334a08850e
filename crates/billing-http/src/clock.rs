//! `/v1/admin/clock` (test environment with `TEST_CLOCK=true` only): read and advance the shared test clock,
//! the way Stripe's test clocks let a year of billing run in seconds.

use actix_web::{HttpResponse, web};
use billing_infra::{Clock, TestClock};
use serde::Deserialize;
use serde_json::json;

use crate::{AdminUser, ApiError, ok};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    /// How far to move the clock forward, in seconds (1 second to 400 days).
    pub seconds: i64,
}

/// The test clock's time and offset.
pub async fn get(_admin: AdminUser, clock: web::Data<TestClock>) -> Result<HttpResponse, ApiError> {
    clock.refresh().await.map_err(|e| ApiError::unavailable(&e))?;
    Ok(ok(json!({"now": crate::rfc3339(clock.now()), "offset_seconds": clock.offset_ms() / 1000}), "test clock"))
}

/// Moves the test clock forward for every process of the environment.
pub async fn advance(
    _admin: AdminUser,
    clock: web::Data<TestClock>,
    body: crate::Json<Advance>,
) -> Result<HttpResponse, ApiError> {
    let seconds = body.into_inner().seconds;
    if !(1..=400 * 86_400).contains(&seconds) {
        return Err(ApiError::invalid_field("seconds", "from 1 to 34560000 (400 days); the clock only moves forward"));
    }
    let offset = clock.advance(seconds * 1000).await.map_err(|e| ApiError::unavailable(&e))?;
    tracing::warn!(seconds, offset_ms = offset, "test clock advanced");
    Ok(ok(json!({"now": crate::rfc3339(clock.now()), "offset_seconds": offset / 1000}), "test clock advanced"))
}

/// Registers the clock routes.
pub fn configure(cfg: &mut web::ServiceConfig, clock: TestClock) {
    cfg.app_data(web::Data::new(clock))
        .service(web::resource("/v1/admin/clock").route(web::get().to(get)).route(web::post().to(advance)));
}
