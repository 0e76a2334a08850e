//! Requests signed by the other service (webhooks and internal calls): checked in API.md's order, and built.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest};
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

/// The secrets of one kind of signed traffic, read from the settings once: the first signs, every one verifies
/// (so a secret can be rotated without a moment when one side refuses the other).
#[derive(Clone, Default)]
pub struct Keys(std::sync::Arc<[Vec<u8>]>);

impl Keys {
    /// From the configured secrets, in order.
    pub fn new(secrets: &[billing_config::Secret<String>]) -> Self {
        Self(secrets.iter().map(|s| s.expose().as_bytes().to_vec()).collect())
    }

    /// The secret that signs (empty when none is configured: nothing will verify it).
    pub fn signing(&self) -> &[u8] {
        self.0.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// Every secret that verifies.
    pub fn verifying(&self) -> Vec<&[u8]> {
        self.0.iter().map(Vec::as_slice).collect()
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} secrets, redacted)", self.0.len())
    }
}

/// Every kind of signed traffic between the services, keyed once per process.
#[derive(Debug, Clone, Default)]
pub struct ServiceKeys {
    /// Payment service → subscription service events.
    pub webhook: Keys,
    /// Internal calls from the subscription service to the payment service.
    pub sub_to_pay: Keys,
    /// Internal calls from the payment service to the subscription service.
    pub pay_to_sub: Keys,
}

impl ServiceKeys {
    /// From the signing settings.
    pub fn from_settings(signing: &billing_config::SigningSecrets) -> Self {
        Self {
            webhook: Keys::new(&signing.webhook),
            sub_to_pay: Keys::new(&signing.internal_sub_to_pay),
            pay_to_sub: Keys::new(&signing.internal_pay_to_sub),
        }
    }
}

/// Who signed a request, and so which keys verify it and how a failure is answered.
pub trait Channel {
    /// Internal routes answer anything but a valid signature with 401; webhooks follow API.md's order.
    const INTERNAL: bool;
    /// The keys of this channel.
    fn keys(keys: &ServiceKeys) -> &Keys;
}

/// Events from the payment service (`POST /v1/webhooks/payment`).
#[derive(Debug)]
pub struct PaymentEvents;
/// Internal calls from the payment service.
#[derive(Debug)]
pub struct FromPaymentService;
/// Internal calls from the subscription service.
#[derive(Debug)]
pub struct FromSubscriptionService;

impl Channel for PaymentEvents {
    const INTERNAL: bool = false;
    fn keys(keys: &ServiceKeys) -> &Keys {
        &keys.webhook
    }
}

impl Channel for FromPaymentService {
    const INTERNAL: bool = true;
    fn keys(keys: &ServiceKeys) -> &Keys {
        &keys.pay_to_sub
    }
}

impl Channel for FromSubscriptionService {
    const INTERNAL: bool = true;
    fn keys(keys: &ServiceKeys) -> &Keys {
        &keys.sub_to_pay
    }
}

/// What the signed-request extractors need, registered once per process as app data.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub keys: ServiceKeys,
    pub clock: billing_infra::SharedClock,
}

fn verifier(req: &HttpRequest) -> Result<actix_web::web::Data<Verifier>, ApiError> {
    req.app_data::<actix_web::web::Data<Verifier>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"signed routes need a Verifier registered as app data"))
}

/// A body signed by channel `C`, verified over the exact bytes received, then parsed as `T` (400/422 as any body).
#[derive(Debug)]
pub struct Signed<T, C> {
    pub body: T,
    /// The bytes as received, for a record of what was signed.
    pub raw: actix_web::web::Bytes,
    channel: std::marker::PhantomData<C>,
}

impl<T: serde::de::DeserializeOwned + 'static, C: Channel + 'static> FromRequest for Signed<T, C> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        // The raw body under the same 64 KiB limit (and the same 413) as every body.
        let bytes = actix_web::web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let raw = bytes.await?;
            let verifier = verifier(&req)?;
            verify_at(&req, &raw, &C::keys(&verifier.keys).verifying(), verifier.clock.as_ref(), C::INTERNAL).await?;
            let body = crate::extract::parse_json(&raw)?;
            Ok(Self { body, raw, channel: std::marker::PhantomData })
        })
    }
}

/// A bodiless request (a GET) signed by channel `C` over its request line, `"<METHOD> <path>"`: a signature is good
/// for one route and one object.
#[derive(Debug)]
pub struct SignedLine<C>(std::marker::PhantomData<C>);

impl<C: Channel + 'static> FromRequest for SignedLine<C> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let verifier = verifier(&req)?;
            let line = format!("{} {}", req.method(), req.path());
            verify_at(
                &req,
                line.as_bytes(),
                &C::keys(&verifier.keys).verifying(),
                verifier.clock.as_ref(),
                C::INTERNAL,
            )
            .await?;
            Ok(Self(std::marker::PhantomData))
        })
    }
}

/// A client of the other service's signed routes: signs with one channel's key at its clock's time.
#[derive(Debug, Clone)]
pub struct SignedClient {
    http: reqwest::Client,
    base: String,
    keys: Keys,
    /// Signatures carry this process's time, which the receiver (on the same clock) checks.
    clock: billing_infra::SharedClock,
}

impl SignedClient {
    /// A client of `base` (no trailing slash) signing with `keys`, giving up after `timeout`.
    pub fn new(
        base: &str,
        keys: Keys,
        clock: billing_infra::SharedClock,
        timeout: std::time::Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(std::time::Duration::from_secs(2))
            .pool_idle_timeout(crate::IDLE_CONNECTION)
            .build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), keys, clock })
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A signed GET of `path`, signed over its request line; the id is the request id.
    pub fn get(&self, path: &str, request_id: &str) -> reqwest::RequestBuilder {
        get(&self.http, &self.base, path, self.keys.signing(), self.clock.now().timestamp(), request_id)
    }

    /// A signed JSON POST of `body` to `path` under `id` (an event id, or an idempotency key).
    pub fn post_json(&self, path: &str, id: &str, body: Vec<u8>, request_id: &str) -> reqwest::RequestBuilder {
        post_json(&self.http, &self.url(path), self.keys.signing(), self.clock.now().timestamp(), id, body, request_id)
    }
}
