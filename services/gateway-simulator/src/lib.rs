#![doc = include_str!("../README.md")]
//!
//! Where it differs from Stripe: no customers (a payment method is used directly, and "saving" a card is keeping
//! its payment method id); payment intents must be created with `confirm=true` and settle at once (no 3-D Secure,
//! no `requires_action`, no separate capture); a refund settles at once; events are `payment_intent.succeeded`,
//! `payment_intent.payment_failed` and `refund.created`, retried until acknowledged; amounts are integers in the
//! currency's minor units, as in Stripe.

pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::{Event, PaymentError, PaymentIntent, PaymentMethod, Record, Refund, Store, Stored};

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// The append-only journal holding every object and idempotency key.
    pub journal: PathBuf,
    /// The secret API key callers must present (`Authorization: Bearer sk_test_…`).
    pub api_key: String,
    /// Where events are posted (the payment service's `POST /v1/webhooks/gateway`); none: events wait.
    pub webhook_url: Option<String>,
    /// Signs events (`Stripe-Signature`).
    pub webhook_secret: String,
    pub latency: Duration,
    /// 0.0–1.0 of calls refused with 503 before doing anything.
    pub failure_rate: f64,
}

impl Config {
    /// From the environment's layered configuration (`config/environments`), like the services.
    pub fn load() -> anyhow::Result<Self> {
        let loader = billing_config::Loader::from_process_env()?;
        let layers = loader.load(loader.selected_env()?)?;
        let get = |key: &str| -> anyhow::Result<Option<String>> {
            Ok(layers.get(key)?.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
        };
        let required =
            |key: &str| -> anyhow::Result<String> { get(key)?.ok_or_else(|| anyhow::anyhow!("{key}: is not set")) };
        let number = |key: &str, default: f64| -> anyhow::Result<f64> {
            get(key)?
                .map_or(Ok(default), |v| v.parse().map_err(|_| anyhow::anyhow!("{key}: expected a number, got {v:?}")))
        };
        let secret = required("GATEWAY_WEBHOOK_SECRETS")?;
        let failure_rate = number("GATEWAY_FAILURE_RATE", 0.0)?;
        if !(0.0..=1.0).contains(&failure_rate) {
            anyhow::bail!("GATEWAY_FAILURE_RATE: expected 0.0 to 1.0");
        }
        Ok(Self {
            host: get("HTTP_HOST")?.unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: required("GATEWAY_PORT")?.parse().map_err(|_| anyhow::anyhow!("GATEWAY_PORT: expected a port"))?,
            journal: PathBuf::from(required("GATEWAY_SIMULATOR_JOURNAL")?),
            api_key: required("GATEWAY_API_KEY")?,
            webhook_url: get("GATEWAY_SIMULATOR_WEBHOOK_URL")?,
            webhook_secret: secret.split(',').next().unwrap_or_default().trim().to_owned(),
            latency: Duration::from_millis(number("GATEWAY_LATENCY_MS", 0.0)? as u64),
            failure_rate,
        })
    }
}

/// What tests and operators can make the simulator do next.
#[derive(Debug, Default)]
struct Faults {
    fail_next: AtomicU32,
    error_after_charge_next: AtomicU32,
    latency_ms: AtomicU64,
}

fn take(counter: &AtomicU32) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

/// The simulator: its durable store, configuration, fault knobs and event endpoint.
#[derive(Debug)]
pub struct Simulator {
    store: Store,
    config: Config,
    faults: Faults,
    webhook_url: RwLock<Option<String>>,
    /// Delivery attempts of pending events: (attempts, not before).
    backoff: Mutex<HashMap<String, (u32, Instant)>>,
}

/// A running simulator.
#[derive(Debug)]
pub struct Running {
    pub url: String,
    pub simulator: Arc<Simulator>,
    server: actix_web::dev::ServerHandle,
}

impl Running {
    /// Stops the HTTP server (the journal keeps everything for the next start).
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

impl Simulator {
    /// Where events go from now on.
    pub fn set_webhook_url(&self, url: &str) {
        if let Ok(mut current) = self.webhook_url.write() {
            *current = Some(url.to_owned());
        }
    }

    /// How many payment intents were confirmed (charges attempted), successful or declined.
    pub fn charges_made(&self) -> usize {
        self.store.begin().state().intents.len()
    }

    /// The next `n` charges or refunds are refused with 503 before anything happens.
    pub fn fail_next(&self, n: u32) {
        self.faults.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` answers to charges or refunds are lost: the request is done (or replayed under its key) and
    /// answered with a 500, so the caller cannot know what happened.
    pub fn error_after_charge_next(&self, n: u32) {
        self.faults.error_after_charge_next.store(n, Ordering::SeqCst);
    }

    /// Every call waits `ms` milliseconds before anything happens.
    pub fn set_latency_ms(&self, ms: u64) {
        self.faults.latency_ms.store(ms, Ordering::SeqCst);
    }

    /// Events not yet acknowledged by the endpoint.
    pub fn pending_events(&self) -> usize {
        self.store.begin().state().pending_events.len()
    }
}

/// Opens the journal and serves on `listener`; events are delivered by a background task.
pub fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let store = Store::open(&config.journal)?;
    let addr = listener.local_addr()?;
    let simulator = Arc::new(Simulator {
        store,
        webhook_url: RwLock::new(config.webhook_url.clone()),
        faults: Faults { latency_ms: AtomicU64::new(config.latency.as_millis() as u64), ..Faults::default() },
        config,
        backoff: Mutex::new(HashMap::new()),
    });
    let data = web::Data::from(simulator.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .route("/v1/health", web::get().to(health))
            .route("/v1/health/detailed", web::get().to(health))
            .route("/v1/payment_methods", web::post().to(create_payment_method))
            .route("/v1/payment_methods/{id}", web::get().to(get_payment_method))
            .route("/v1/payment_intents", web::post().to(create_payment_intent))
            .route("/v1/payment_intents/search", web::get().to(search_payment_intents))
            .route("/v1/payment_intents/{id}", web::get().to(get_payment_intent))
            .route("/v1/refunds", web::post().to(create_refund))
            .route("/v1/refunds/{id}", web::get().to(get_refund))
            .route("/_simulator/faults", web::post().to(set_faults))
            .route("/_simulator/stats", web::get().to(stats))
            .default_service(web::to(|| async {
                HttpResponse::from(stripe_error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    None,
                    "Unrecognized request URL.",
                    None,
                ))
            }))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tokio::spawn(deliver_events(simulator.clone()));
    Ok(Running { url: format!("http://{addr}"), simulator, server: handle })
}

// ---------------------------------------------------------------------------------------------- helpers

/// A refused request: a status and Stripe's error object.
#[derive(Debug)]
struct Refused(StatusCode, Value);

impl From<Refused> for HttpResponse {
    fn from(Refused(status, body): Refused) -> Self {
        HttpResponse::build(status).json(body)
    }
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    extra: Option<(&str, Value)>,
) -> Refused {
    let mut error = json!({"type": kind, "message": message});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    if let Some((key, value)) = extra {
        error[key] = value;
    }
    Refused(status, json!({"error": error}))
}

fn invalid(param: &str, message: &str) -> Refused {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_invalid"),
        message,
        Some(("param", json!(param))),
    )
}

fn authorized(sim: &Simulator, req: &HttpRequest) -> Result<(), Refused> {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !presented.is_empty() && presented == sim.config.api_key {
        Ok(())
    } else {
        Err(stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, "Invalid API Key provided.", None))
    }
}

/// Latency and injected outages, before anything is looked at. Injected outages (`fail_next`) hit the calls that
/// move money (payment intents, refunds), so a test can lose exactly a charge's answers.
async fn before_call(sim: &Simulator, moves_money: bool) -> Result<(), Refused> {
    let latency = sim.faults.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let random = sim.config.failure_rate > 0.0 && rand::random::<f64>() < sim.config.failure_rate;
    if (moves_money && take(&sim.faults.fail_next)) || random {
        return Err(stripe_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            None,
            "The simulator is unavailable (injected); nothing was done.",
            None,
        ));
    }
    Ok(())
}

/// What every POST goes through before its work: the API key, latency and injected outages, then its form body.
async fn admit(
    sim: &Simulator,
    req: &HttpRequest,
    body: &[u8],
    moves_money: bool,
) -> Result<BTreeMap<String, String>, Refused> {
    authorized(sim, req)?;
    before_call(sim, moves_money).await?;
    form(body)
}

fn form(body: &[u8]) -> Result<BTreeMap<String, String>, Refused> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| invalid("body", "The body must be application/x-www-form-urlencoded."))
}

fn metadata(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("metadata[")?.strip_suffix(']').map(|k| (k.to_owned(), v.clone())))
        .collect()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::now_v7().simple().to_string()[..24])
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn answer(status: u16, body: Value, replayed: bool) -> HttpResponse {
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    if replayed {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.json(body)
}

/// A POST under `Idempotency-Key`: replays the stored answer, refuses the key with other parameters, or runs
/// `make` (under the store's lock, so two requests with one key never both run) and keeps its answer.
fn idempotent(
    sim: &Simulator,
    req: &HttpRequest,
    body: &[u8],
    moves_money: bool,
    make: impl FnOnce(&mut store::Txn<'_>) -> Result<(u16, Value, Vec<Record>), Refused>,
) -> HttpResponse {
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let fingerprint = hex::encode(Sha256::new().chain_update(req.path()).chain_update(body).finalize());
    let mut txn = sim.store.begin();
    if let Some(key) = &key
        && let Some(stored) = txn.state().idempotency.get(key).cloned()
    {
        if stored.fingerprint != fingerprint {
            return HttpResponse::from(stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                None,
            ));
        }
        drop(txn);
        if moves_money && take(&sim.faults.error_after_charge_next) {
            return lost_answer();
        }
        return answer(stored.status, stored.body, true);
    }
    let (status, value, mut records) = match make(&mut txn) {
        Ok(made) => made,
        Err(refused) => return refused.into(),
    };
    if let Some(key) = key {
        let stored = Stored { fingerprint, status, body: value.clone() };
        records.push(Record::Idempotent { key, stored });
    }
    if let Err(err) = txn.record(records) {
        tracing::error!(error = %err, "could not write the journal");
        return stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, "Storage failed.", None).into();
    }
    drop(txn);
    if moves_money && take(&sim.faults.error_after_charge_next) {
        // Done and journaled, but the caller is told nothing useful: only the same key or the event tells.
        return lost_answer();
    }
    answer(status, value, false)
}

fn lost_answer() -> HttpResponse {
    stripe_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        None,
        "An error occurred after the request was processed (injected).",
        None,
    )
    .into()
}

// ---------------------------------------------------------------------------------------------- objects

/// The declining test cards (number, decline code, message): the rest of the Luhn-valid cards succeed.
const DECLINING_CARDS: [(&str, &str, &str); 4] = [
    ("4000000000000002", "generic_decline", "Your card was declined."),
    ("4000000000009995", "insufficient_funds", "Your card has insufficient funds."),
    ("4000000000000069", "expired_card", "Your card has expired."),
    (
        "4000000000000119",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
];

fn payment_method_json(pm: &PaymentMethod) -> Value {
    json!({"id": pm.id, "object": "payment_method", "type": "card", "created": pm.created, "livemode": false,
        "billing_details": {"name": pm.billing_name},
        "card": {"brand": pm.brand, "last4": pm.last4, "exp_month": pm.exp_month, "exp_year": pm.exp_year}})
}

fn intent_json(pi: &PaymentIntent) -> Value {
    json!({"id": pi.id, "object": "payment_intent", "amount": pi.amount, "amount_received": if pi.status == "succeeded" { pi.amount } else { 0 },
        "currency": pi.currency, "status": pi.status, "payment_method": pi.payment_method, "latest_charge": pi.latest_charge,
        "confirmation_method": "automatic", "capture_method": "automatic", "metadata": pi.metadata, "created": pi.created, "livemode": false,
        "last_payment_error": pi.last_payment_error.as_ref().map(|e| json!({"type": "card_error", "code": e.code, "decline_code": e.decline_code, "message": e.message}))})
}

fn refund_json(re: &Refund) -> Value {
    json!({"id": re.id, "object": "refund", "amount": re.amount, "currency": re.currency, "payment_intent": re.payment_intent,
        "charge": re.charge, "status": re.status, "failure_reason": re.failure_reason, "metadata": re.metadata, "created": re.created})
}

fn event(kind: &str, object: Value) -> Record {
    let id = new_id("evt");
    let body = json!({"id": id, "object": "event", "type": kind, "created": now(), "livemode": false,
        "api_version": "2026-11-01", "data": {"object": object}});
    Record::Event(Event { id, body })
}

// ---------------------------------------------------------------------------------------------- routes

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy", "service": "gateway-simulator"}))
}

async fn create_payment_method(sim: web::Data<Simulator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let params = match admit(&sim, &req, &body, false).await {
        Ok(p) => p,
        Err(res) => return res.into(),
    };
    idempotent(&sim, &req, &body, false, |_| {
        if params.get("type").map(String::as_str) != Some("card") {
            return Err(invalid("type", "Only type=card is supported."));
        }
        let number = params.get("card[number]").map(|n| n.replace(' ', "")).unwrap_or_default();
        if !(12..=19).contains(&number.len())
            || !number.bytes().all(|b| b.is_ascii_digit())
            || !billing_domain::card::luhn_valid(&number)
        {
            return Err(stripe_error(
                StatusCode::PAYMENT_REQUIRED,
                "card_error",
                Some("incorrect_number"),
                "Your card number is incorrect.",
                Some(("param", json!("card[number]"))),
            ));
        }
        let month: u32 = params.get("card[exp_month]").and_then(|m| m.parse().ok()).unwrap_or(0);
        let year: u32 = params.get("card[exp_year]").and_then(|y| y.parse().ok()).unwrap_or(0);
        if !(1..=12).contains(&month) || year < 2000 {
            return Err(invalid("card[exp_month]", "The card's expiry is invalid."));
        }
        let behaviour =
            DECLINING_CARDS.iter().find(|(n, ..)| *n == number).map_or("ok", |(_, decline, _)| *decline).to_owned();
        let pm = PaymentMethod {
            id: new_id("pm"),
            brand: billing_domain::card::brand(&number).to_owned(),
            last4: number[number.len() - 4..].to_owned(),
            exp_month: month,
            exp_year: year,
            billing_name: params.get("billing_details[name]").cloned().unwrap_or_default(),
            behaviour,
            created: now(),
        };
        Ok((200, payment_method_json(&pm), vec![Record::PaymentMethod(pm)]))
    })
}

async fn get_payment_method(sim: web::Data<Simulator>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Err(res) = authorized(&sim, &req) {
        return res.into();
    }
    match sim.store.begin().state().payment_methods.get(id.as_str()) {
        Some(pm) => HttpResponse::Ok().json(payment_method_json(pm)),
        None => missing("payment_method", &id).into(),
    }
}

fn missing(kind: &str, id: &str) -> Refused {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some(("param", json!("id"))),
    )
}

async fn create_payment_intent(sim: web::Data<Simulator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let params = match admit(&sim, &req, &body, true).await {
        Ok(p) => p,
        Err(res) => return res.into(),
    };
    idempotent(&sim, &req, &body, true, |txn| {
        let amount: i64 = params.get("amount").and_then(|a| a.parse().ok()).filter(|a| *a > 0).ok_or_else(|| {
            invalid("amount", "The amount must be a positive integer in the currency's smallest unit.")
        })?;
        let currency = params
            .get("currency")
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|c| c.to_ascii_lowercase())
            .ok_or_else(|| invalid("currency", "A three-letter ISO currency code is required."))?;
        if params.get("confirm").map(String::as_str) != Some("true") {
            return Err(invalid("confirm", "The simulator only confirms at creation: pass confirm=true."));
        }
        let pm_id = params.get("payment_method").cloned().unwrap_or_default();
        let Some(pm) = txn.state().payment_methods.get(&pm_id).cloned() else {
            return Err(stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such PaymentMethod: '{pm_id}'"),
                Some(("param", json!("payment_method"))),
            ));
        };
        let declined = DECLINING_CARDS.iter().find(|(_, decline, _)| *decline == pm.behaviour);
        let pi = PaymentIntent {
            id: new_id("pi"),
            amount,
            currency,
            payment_method: pm.id,
            status: if declined.is_some() { "requires_payment_method" } else { "succeeded" }.to_owned(),
            latest_charge: new_id("ch"),
            last_payment_error: declined.map(|(_, decline, message)| PaymentError {
                code: if *decline == "expired_card" || *decline == "processing_error" {
                    (*decline).to_owned()
                } else {
                    "card_declined".to_owned()
                },
                decline_code: (*decline).to_owned(),
                message: (*message).to_owned(),
            }),
            metadata: metadata(&params),
            amount_refunded: 0,
            created: now(),
        };
        let object = intent_json(&pi);
        let (status, value, kind) = match &pi.last_payment_error {
            None => (200, object.clone(), "payment_intent.succeeded"),
            Some(err) => (
                402,
                json!({"error": {"type": "card_error", "code": err.code, "decline_code": err.decline_code,
                    "message": err.message, "payment_intent": object.clone()}}),
                "payment_intent.payment_failed",
            ),
        };
        Ok((status, value, vec![Record::PaymentIntent(pi), event(kind, object)]))
    })
}

async fn get_payment_intent(sim: web::Data<Simulator>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Err(res) = authorized(&sim, &req) {
        return res.into();
    }
    match sim.store.begin().state().intents.get(id.as_str()) {
        Some(pi) => HttpResponse::Ok().json(intent_json(pi)),
        None => missing("payment_intent", &id).into(),
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    query: String,
}

/// `GET /v1/payment_intents/search?query=metadata['key']:'value'`: the one clause of Stripe's search language the
/// payment service uses, to find an intent whose answer it lost.
async fn search_payment_intents(
    sim: web::Data<Simulator>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> HttpResponse {
    if let Err(res) = authorized(&sim, &req) {
        return res.into();
    }
    let clause = query.query.trim();
    let parsed = clause
        .strip_prefix("metadata['")
        .and_then(|rest| rest.split_once("']:'"))
        .and_then(|(key, value)| value.strip_suffix('\'').map(|value| (key.to_owned(), value.to_owned())));
    let Some((key, value)) = parsed else {
        return invalid("query", "Only metadata['key']:'value' is supported by the simulator.").into();
    };
    let txn = sim.store.begin();
    let mut found: Vec<&PaymentIntent> =
        txn.state().intents.values().filter(|pi| pi.metadata.get(&key) == Some(&value)).collect();
    found.sort_by_key(|pi| std::cmp::Reverse(pi.created));
    let data: Vec<Value> = found.into_iter().map(intent_json).collect();
    HttpResponse::Ok().json(json!({"object": "search_result", "data": data, "has_more": false}))
}

async fn create_refund(sim: web::Data<Simulator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let params = match admit(&sim, &req, &body, true).await {
        Ok(p) => p,
        Err(res) => return res.into(),
    };
    idempotent(&sim, &req, &body, true, |txn| {
        let pi_id = params.get("payment_intent").cloned().unwrap_or_default();
        let Some(mut pi) = txn.state().intents.get(&pi_id).cloned() else {
            return Err(stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such payment_intent: '{pi_id}'"),
                Some(("param", json!("payment_intent"))),
            ));
        };
        if pi.status != "succeeded" {
            return Err(invalid("payment_intent", "This PaymentIntent does not have a successful charge to refund."));
        }
        let remaining = pi.amount - pi.amount_refunded;
        let amount = match params.get("amount") {
            Some(a) => a.parse::<i64>().ok().filter(|a| *a > 0).ok_or_else(|| invalid("amount", "Invalid integer."))?,
            None => remaining,
        };
        if remaining <= 0 {
            return Err(stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("charge_already_refunded"),
                "This charge has already been refunded.",
                None,
            ));
        }
        if amount > remaining {
            return Err(stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("amount_too_large"),
                "Refund amount is greater than the unrefunded amount on the charge.",
                Some(("param", json!("amount"))),
            ));
        }
        pi.amount_refunded += amount;
        let re = Refund {
            id: new_id("re"),
            amount,
            currency: pi.currency.clone(),
            payment_intent: pi.id.clone(),
            charge: pi.latest_charge.clone(),
            status: "succeeded".to_owned(),
            failure_reason: None,
            metadata: metadata(&params),
            created: now(),
        };
        let object = refund_json(&re);
        Ok((200, object.clone(), vec![Record::PaymentIntent(pi), Record::Refund(re), event("refund.created", object)]))
    })
}

async fn get_refund(sim: web::Data<Simulator>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Err(res) = authorized(&sim, &req) {
        return res.into();
    }
    match sim.store.begin().state().refunds.get(id.as_str()) {
        Some(re) => HttpResponse::Ok().json(refund_json(re)),
        None => missing("refund", &id).into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    fail_next: Option<u32>,
    error_after_charge_next: Option<u32>,
    latency_ms: Option<u64>,
}

async fn set_faults(sim: web::Data<Simulator>, req: HttpRequest, body: web::Json<FaultsBody>) -> HttpResponse {
    if let Err(res) = authorized(&sim, &req) {
        return res.into();
    }
    let body = body.into_inner();
    if let Some(n) = body.fail_next {
        sim.fail_next(n);
    }
    if let Some(n) = body.error_after_charge_next {
        sim.error_after_charge_next(n);
    }
    if let Some(ms) = body.latency_ms {
        sim.faults.latency_ms.store(ms, Ordering::SeqCst);
    }
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn stats(sim: web::Data<Simulator>, req: HttpRequest) -> HttpResponse {
    if let Err(res) = authorized(&sim, &req) {
        return res.into();
    }
    let txn = sim.store.begin();
    let state = txn.state();
    HttpResponse::Ok().json(json!({
        "payment_intents": state.intents.len(),
        "succeeded": state.intents.values().filter(|pi| pi.status == "succeeded").count(),
        "refunds": state.refunds.len(),
        "pending_events": state.pending_events.len(),
    }))
}

// ---------------------------------------------------------------------------------------------- events

/// Posts pending events, oldest first, until each is acknowledged with a 2xx; a failure backs off (1 s doubling
/// to a minute). Undelivered events are in the journal, so a restart resumes them.
async fn deliver_events(sim: Arc<Simulator>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(url) = sim.webhook_url.read().ok().and_then(|u| u.clone()) else { continue };
        let due: Vec<Event> = {
            let txn = sim.store.begin();
            let backoff = sim.backoff.lock().map(|b| b.clone()).unwrap_or_default();
            txn.state()
                .pending_events
                .values()
                .filter(|e| backoff.get(&e.id).is_none_or(|(_, at)| *at <= Instant::now()))
                .take(32)
                .cloned()
                .collect()
        };
        for event in due {
            let body = event.body.to_string();
            let signature =
                billing_signing::stripe_signature(sim.config.webhook_secret.as_bytes(), now(), body.as_bytes());
            let sent = http
                .post(&url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await;
            let delivered = sent.as_ref().is_ok_and(|r| r.status().is_success());
            if delivered {
                if let Err(err) = sim.store.begin().record(vec![Record::Delivered { id: event.id.clone() }]) {
                    tracing::error!(error = %err, "could not journal a delivery");
                }
                if let Ok(mut b) = sim.backoff.lock() {
                    b.remove(&event.id);
                }
            } else if let Ok(mut b) = sim.backoff.lock() {
                let entry = b.entry(event.id.clone()).or_insert((0, Instant::now()));
                entry.0 += 1;
                let delay = Duration::from_secs(1u64 << entry.0.min(6)).min(Duration::from_secs(60));
                entry.1 = Instant::now() + delay;
            }
        }
    }
}
