//! Middleware every route runs through.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use tracing::Instrument;

use crate::context::{self, REQUEST_ID_HEADER, RequestId};
use crate::error::FinalBody;
use crate::{ApiError, BODY_LIMIT_BYTES};

/// Request id, tracing span, early body-size check, an error envelope for every error response
/// actix produced on its own, request metrics, and one access-log line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let incoming = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let id = RequestId::from_header(incoming);
    req.extensions_mut().insert(id.clone());
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %id.0, method = %method, path = %req.path());
    let started = Instant::now();
    let declared_len =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // No clone of the request may live across `next.call`: routing needs the only reference to it.
    let handled = async move {
        if declared_len.is_some_and(|len| len > BODY_LIMIT_BYTES as u64) {
            return Ok(req.into_response(ApiError::payload_too_large().error_response()));
        }
        next.call(req).await.map(ServiceResponse::map_into_boxed_body)
    };
    // Inner layers turn errors into responses; an `Err` here is rendered by actix itself.
    let mut res = context::scope(id.0.clone(), handled).instrument(span.clone()).await?;

    let status = res.status();
    if (status.is_client_error() || status.is_server_error())
        && res.response().extensions().get::<FinalBody>().is_none()
    {
        let allow = res.headers().get(header::ALLOW).cloned();
        let mut replacement = context::sync_scope(id.0.clone(), || ApiError::for_status(status).error_response());
        if let Some(allow) = allow {
            replacement.headers_mut().insert(header::ALLOW, allow);
        }
        res = res.into_response(replacement);
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }

    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = started.elapsed();
    let status_label = status.as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status_label.clone())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.clone(), "status" => status_label)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), route, latency_ms, "request completed");
        } else if elapsed >= SLOW_REQUEST {
            tracing::info!(status = status.as_u16(), route, latency_ms, slow = true, "request completed");
        } else if route.starts_with("/v1/health") || route == "/metrics" {
            tracing::debug!(status = status.as_u16(), route, latency_ms, "request completed");
        } else if sampled() {
            tracing::info!(status = status.as_u16(), route, latency_ms, "request completed");
        }
    });
    Ok(res)
}

/// A request this slow is always access-logged, whatever the sampling.
const SLOW_REQUEST: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether this request is one of the access-logged ones: one in [`crate::telemetry::access_sample`].
fn sampled() -> bool {
    static SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    one_in(&SEEN, u64::from(crate::telemetry::access_sample()))
}

/// True for one call in `every`, counted on `seen`.
fn one_in(seen: &std::sync::atomic::AtomicU64, every: u64) -> bool {
    every <= 1 || seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(every)
}

/// Every `/v1` route answers with or without a trailing slash (`/v1/plans/` == `/v1/plans`).
pub async fn trim_trailing_slash(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    if path.starts_with("/v1/") && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let path_and_query = match req.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        let mut parts = req.head().uri.clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";

/// Security headers on every response; the Swagger UI gets a CSP that lets its own assets load.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_docs = req.path().starts_with("/docs");
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    let set = |headers: &mut header::HeaderMap, name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains");
    set(headers, HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    set(headers, header::CONTENT_SECURITY_POLICY, if is_docs { DOCS_CSP } else { API_CSP });
    if !is_docs {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    Ok(res)
}

#[cfg(test)]
mod sampling_tests {
    #[test]
    fn one_request_in_n_is_sampled() {
        let seen = std::sync::atomic::AtomicU64::new(0);
        let logged = (0..1000).filter(|_| super::one_in(&seen, 100)).count();
        assert_eq!(logged, 10);
        assert!((0..5).all(|_| super::one_in(&seen, 1)), "1 logs every request");
    }
}
