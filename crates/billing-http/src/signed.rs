//! Requests signed by the other service (webhooks and internal calls): checked in API.md's order, and built.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use billing_signing::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, VerifyError};

use crate::ApiError;

fn missing() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "missing_signature",
        "X-Webhook-Id, X-Webhook-Timestamp and X-Webhook-Signature are required",
    )
}

/// Headers present (400), timestamp within ±300 s of `now` (400 `stale_timestamp`), signature over `signed`
/// (the exact bytes received, or the request line for a GET) under one of `secrets` (401 `invalid_signature`).
pub fn verify(req: &HttpRequest, signed: &[u8], secrets: &[&[u8]], now: i64) -> Result<(), ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if header(ID_HEADER).is_none() {
        return Err(missing());
    }
    billing_signing::verify(secrets, header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), signed, now).map_err(rejection)
}

/// The answer to a signature that did not verify: 400 for a missing header or a bad or stale timestamp, 401 for a
/// signature that does not match.
pub fn rejection(e: VerifyError) -> ApiError {
    match e {
        VerifyError::MissingHeader => missing(),
        VerifyError::BadTimestamp | VerifyError::StaleTimestamp => ApiError::new(
            StatusCode::BAD_REQUEST,
            "stale_timestamp",
            "the timestamp is missing, malformed or more than 300 seconds away",
        ),
        VerifyError::InvalidSignature => ApiError::unauthorized("invalid_signature", "the signature does not match"),
    }
}

/// As [`verify`], at `clock`'s time: a timestamp that looks stale is checked again after the clock catches up with
/// the other processes (a test clock just moved by another process), so only a truly stale one is refused.
pub async fn verify_at(
    req: &HttpRequest,
    signed: &[u8],
    secrets: &[&[u8]],
    clock: &dyn billing_infra::Clock,
    internal: bool,
) -> Result<(), ApiError> {
    let check = |now: i64| {
        if internal { verify_internal(req, signed, secrets, now) } else { verify(req, signed, secrets, now) }
    };
    match check(clock.now().timestamp()) {
        Ok(()) => Ok(()),
        Err(_) => {
            clock.resync().await;
            check(clock.now().timestamp())
        }
    }
}

/// As [`verify`] for internal routes: anything but a valid signature (a user's JWT included) is 401.
pub fn verify_internal(req: &HttpRequest, signed: &[u8], secrets: &[&[u8]], now: i64) -> Result<(), ApiError> {
    verify(req, signed, secrets, now).map_err(|e| {
        if e.status() == StatusCode::UNAUTHORIZED {
            e
        } else {
            ApiError::unauthorized("invalid_signature", "internal routes need a valid service signature")
        }
    })
}

/// `req` with the id, timestamp and signature headers over `signed` (the exact body, or `GET <path>` for a GET),
/// dated `now`, and the request id that correlates the call.
pub fn sign(
    req: reqwest::RequestBuilder,
    secret: &[u8],
    now: i64,
    id: &str,
    signed: &[u8],
    request_id: &str,
) -> reqwest::RequestBuilder {
    billing_signing::headers(secret, now, id, signed)
        .into_iter()
        .fold(req, |req, (name, value)| req.header(name, value))
        .header("x-request-id", request_id)
}

/// A signed GET of `base` + `path`: the signature covers the request line, the id is the request id.
pub fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    secret: &[u8],
    now: i64,
    request_id: &str,
) -> reqwest::RequestBuilder {
    sign(http.get(format!("{base}{path}")), secret, now, request_id, format!("GET {path}").as_bytes(), request_id)
}

/// A signed JSON POST of `body` to `url` under the id `id` (an event id, or an idempotency key).
pub fn post_json(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    now: i64,
    id: &str,
    body: Vec<u8>,
    request_id: &str,
) -> reqwest::RequestBuilder {
    sign(http.post(url), secret, now, id, &body, request_id).header("content-type", "application/json").body(body)
}
