//! The gateway as an HTTP client of Stripe's API shape (the simulator in development and tests, a real processor
//! in production). A charge is a payment method made from the card, then a payment intent confirmed at once, under
//! the caller's idempotency key.
//!
//! What an answer means: a connection that could not be made sent nothing (`Unavailable`); a timeout, a dropped
//! connection or a 5xx after sending means the outcome is unknown, so the call is retried a couple of times under
//! the same key and, failing that, reported as `Timeout` (the caller keeps the attempt pending; the same key or the
//! gateway's event settles it, never a second charge).

use std::time::Duration;

use billing_config::{GatewaySettings, Secret};
use billing_domain::Money;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{
    CardDetails, ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentSource, RefundOutcome, SavedCard,
};

/// Soft declines: the card may work later, so dunning tries again.
const RETRYABLE_DECLINES: [&str; 4] =
    ["insufficient_funds", "processing_error", "try_again_later", "issuer_not_available"];
/// Tries of one call whose outcome was unknown, under the same idempotency key.
const ATTEMPTS: u32 = 3;

/// A gateway reached over HTTP.
#[derive(Clone)]
pub struct HttpGateway {
    http: reqwest::Client,
    base: String,
    api_key: Secret<String>,
}

impl std::fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGateway").field("base", &self.base).finish_non_exhaustive()
    }
}

/// One answer of the gateway's API.
struct Answer {
    status: u16,
    body: Value,
}

impl HttpGateway {
    /// A client of the configured gateway.
    pub fn from_settings(settings: &GatewaySettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(settings.timeout)
            .pool_max_idle_per_host(16)
            .pool_idle_timeout(billing_http::IDLE_CONNECTION)
            .build()?;
        Ok(Self { http, base: settings.url.clone(), api_key: settings.api_key.clone() })
    }

    /// Whether the gateway answers HTTP at all (any status counts: a real processor has no health route).
    pub async fn reachable(&self) -> Result<(), reqwest::Error> {
        self.http.get(format!("{}/v1/health", self.base)).timeout(Duration::from_secs(2)).send().await.map(|_| ())
    }

    /// POSTs `form` to `path` under `key`, retrying an unknown outcome under the same key.
    async fn post(&self, path: &str, key: &str, form: &[(String, String)]) -> Result<Answer, GatewayError> {
        let mut sent_once = false;
        let mut last = GatewayError::Unavailable("not tried".to_owned());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * 3_u64.pow(attempt - 1))).await;
            }
            let sent = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(self.api_key.expose())
                .header("Idempotency-Key", key)
                .form(form)
                .send()
                .await;
            match sent {
                Ok(res) if res.status().is_server_error() => {
                    sent_once = true;
                    last = GatewayError::Timeout;
                }
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body = res.json::<Value>().await.map_err(|_| GatewayError::Timeout)?;
                    return Ok(Answer { status, body });
                }
                Err(err) if err.is_connect() && !sent_once => {
                    last = GatewayError::Unavailable(format!("cannot reach the gateway: {err}"));
                }
                Err(_) => {
                    sent_once = true;
                    last = GatewayError::Timeout;
                }
            }
        }
        Err(last)
    }

    /// A payment method made from the card: its id, and the card as the gateway describes it.
    async fn payment_method(&self, card: &CardDetails, key: &str) -> Result<Result<SavedCard, Declined>, GatewayError> {
        let form = vec![
            ("type".to_owned(), "card".to_owned()),
            ("card[number]".to_owned(), card.number.clone()),
            ("card[exp_month]".to_owned(), card.exp_month.to_string()),
            ("card[exp_year]".to_owned(), card.exp_year.to_string()),
            ("card[cvc]".to_owned(), card.cvv.clone()),
            ("billing_details[name]".to_owned(), card.cardholder_name.clone()),
        ];
        let answer = self.post("/v1/payment_methods", key, &form).await?;
        if answer.status == 200 {
            return Ok(Ok(saved_card(&answer.body)));
        }
        Ok(Err(declined(&answer.body)))
    }

    /// The payment method `id` (`pm_…`), retrieved: how a charge settled after the fact keeps its card.
    async fn retrieve_payment_method(&self, id: &str) -> Result<SavedCard, GatewayError> {
        let res = self
            .http
            .get(format!("{}/v1/payment_methods/{id}", self.base))
            .bearer_auth(self.api_key.expose())
            .send()
            .await
            .map_err(|e| GatewayError::Unavailable(format!("cannot reach the gateway: {e}")))?;
        if !res.status().is_success() {
            return Err(GatewayError::Unavailable(format!("the gateway answered {}", res.status())));
        }
        Ok(saved_card(&res.json().await.map_err(|_| GatewayError::Timeout)?))
    }
}

/// A Stripe payment method object as the card we keep of it.
fn saved_card(method: &Value) -> SavedCard {
    let card = &method["card"];
    let number = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or_default();
    SavedCard {
        token: text(&method["id"]),
        cardholder_name: text(&method["billing_details"]["name"]),
        brand: text(&card["brand"]),
        last4: text(&card["last4"]),
        exp_month: number(&card["exp_month"]),
        exp_year: number(&card["exp_year"]),
    }
}

/// A refusal of the card itself, before or at the charge.
struct Declined {
    code: String,
    message: String,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn declined(body: &Value) -> Declined {
    let error = &body["error"];
    Declined {
        code: decline_code(error),
        message: error["message"].as_str().unwrap_or("the card was declined").to_owned(),
    }
}

/// Our decline code for a gateway error (`error` of an answer, `last_payment_error` of an event): the same for one
/// charge whichever of the two settles it. The specific reason when the issuer gave one; Stripe's
/// `generic_decline` says no more than `card_declined`.
fn decline_code(error: &Value) -> String {
    match error["decline_code"].as_str() {
        Some("generic_decline") | None => error["code"].as_str().unwrap_or("card_declined"),
        Some(reason) => reason,
    }
    .to_owned()
}

impl PaymentGateway for HttpGateway {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        Box::pin(async move {
            let (method, card) = match &request.source {
                PaymentSource::Card(card) => {
                    match self.payment_method(card, &format!("{}:pm", request.idempotency_key)).await? {
                        Ok(saved) => (saved.token.clone(), request.save_card.then_some(saved)),
                        Err(refused) => {
                            return Ok(ChargeOutcome::Declined {
                                reference: String::new(),
                                retryable: false,
                                code: refused.code,
                                message: refused.message,
                            });
                        }
                    }
                }
                PaymentSource::Token(token) => (token.clone(), None),
            };
            let amount = request.amount;
            let form = vec![
                ("amount".to_owned(), amount.minor().to_string()),
                ("currency".to_owned(), amount.currency().code().to_ascii_lowercase()),
                ("payment_method".to_owned(), method),
                ("confirm".to_owned(), "true".to_owned()),
                ("metadata[billing_key]".to_owned(), request.idempotency_key.clone()),
            ];
            let answer = self.post("/v1/payment_intents", &request.idempotency_key, &form).await?;
            match answer.status {
                200 if answer.body["status"] == "succeeded" => {
                    Ok(ChargeOutcome::Succeeded { reference: text(&answer.body["id"]), card })
                }
                402 => {
                    let refused = declined(&answer.body);
                    Ok(ChargeOutcome::Declined {
                        reference: text(&answer.body["error"]["payment_intent"]["id"]),
                        retryable: RETRYABLE_DECLINES.contains(&refused.code.as_str()),
                        code: refused.code,
                        message: refused.message,
                    })
                }
                400 | 404 if answer.body["error"]["code"] == "resource_missing" => Err(GatewayError::UnknownToken),
                status => Err(GatewayError::Unavailable(format!(
                    "the gateway refused the charge ({status}): {}",
                    text(&answer.body["error"]["message"])
                ))),
            }
        })
    }

    fn find_charge(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<ChargeOutcome>, GatewayError>> {
        Box::pin(async move {
            // Stripe's search: the intent carries our key in its metadata.
            let query = format!("metadata['billing_key']:'{}'", idempotency_key.replace('\'', ""));
            let res = self
                .http
                .get(format!("{}/v1/payment_intents/search", self.base))
                .bearer_auth(self.api_key.expose())
                .query(&[("query", query)])
                .send()
                .await
                .map_err(|e| GatewayError::Unavailable(format!("cannot reach the gateway: {e}")))?;
            if !res.status().is_success() {
                return Err(GatewayError::Unavailable(format!("the gateway answered {}", res.status())));
            }
            let body: Value = res.json().await.map_err(|_| GatewayError::Timeout)?;
            let Some(intent) = body["data"].as_array().and_then(|d| d.first()) else { return Ok(None) };
            let reference = text(&intent["id"]);
            Ok(Some(match intent["status"].as_str() {
                Some("succeeded") => {
                    // The card it was paid with, for an attempt whose customer asked to keep it.
                    let card = match intent["payment_method"].as_str() {
                        Some(method) if !method.is_empty() => Some(self.retrieve_payment_method(method).await?),
                        _ => None,
                    };
                    ChargeOutcome::Succeeded { reference, card }
                }
                _ => {
                    let error = &intent["last_payment_error"];
                    let refused = declined(&json!({"error": error}));
                    ChargeOutcome::Declined {
                        reference,
                        retryable: RETRYABLE_DECLINES.contains(&refused.code.as_str()),
                        code: refused.code,
                        message: refused.message,
                    }
                }
            }))
        })
    }

    fn save_card(&self, card: CardDetails) -> BoxFuture<'_, Result<SavedCard, GatewayError>> {
        Box::pin(async move {
            let key = format!("pm:{}", uuid::Uuid::now_v7());
            match self.payment_method(&card, &key).await? {
                Ok(saved) => Ok(saved),
                Err(refused) => Err(GatewayError::Unavailable(format!("the card was refused: {}", refused.message))),
            }
        })
    }

    fn refund(
        &self,
        idempotency_key: String,
        reference: String,
        amount: Money,
    ) -> BoxFuture<'_, Result<RefundOutcome, GatewayError>> {
        Box::pin(async move {
            let form = vec![
                ("payment_intent".to_owned(), reference),
                ("amount".to_owned(), amount.minor().to_string()),
                ("metadata[billing_key]".to_owned(), idempotency_key.clone()),
            ];
            let answer = self.post("/v1/refunds", &idempotency_key, &form).await?;
            let body = &answer.body;
            Ok(match (answer.status, body["status"].as_str()) {
                (200, Some("succeeded" | "pending")) => RefundOutcome::Succeeded { reference: text(&body["id"]) },
                (200, _) => RefundOutcome::Failed {
                    code: body["failure_reason"].as_str().unwrap_or("refund_failed").to_owned(),
                    message: "the gateway could not refund".to_owned(),
                },
                _ => RefundOutcome::Failed {
                    code: body["error"]["code"].as_str().unwrap_or("refund_failed").to_owned(),
                    message: text(&body["error"]["message"]),
                },
            })
        })
    }
}

/// `checks.gateway` of `/v1/health/detailed`: the gateway answers over HTTP.
pub struct GatewayCheck(pub HttpGateway);

impl billing_http::health::HealthCheck for GatewayCheck {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn check(&self) -> BoxFuture<'_, billing_http::health::CheckOutcome> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            match self.0.reachable().await {
                Ok(()) => billing_http::health::CheckOutcome::healthy(started.elapsed()),
                Err(err) => {
                    tracing::warn!(error = %err, "gateway health check failed");
                    billing_http::health::CheckOutcome::unhealthy(started.elapsed(), "gateway unreachable")
                }
            }
        })
    }
}

/// What a gateway event (`payment_intent.succeeded` / `payment_intent.payment_failed`) says of a charge.
pub fn charge_event_outcome(kind: &str, object: &serde_json::Value) -> ChargeOutcome {
    let reference = text(&object["id"]);
    if kind == "payment_intent.succeeded" {
        return ChargeOutcome::Succeeded { reference, card: None };
    }
    let error = &object["last_payment_error"];
    let code = decline_code(error);
    ChargeOutcome::Declined {
        reference,
        retryable: RETRYABLE_DECLINES.contains(&code.as_str()),
        code,
        message: error["message"].as_str().unwrap_or_default().to_owned(),
    }
}

/// What a gateway refund event says of a refund; `None` while the gateway has not decided.
pub fn refund_event_outcome(object: &serde_json::Value) -> Option<RefundOutcome> {
    match object["status"].as_str() {
        Some("succeeded") => Some(RefundOutcome::Succeeded { reference: text(&object["id"]) }),
        Some("failed" | "canceled") => Some(RefundOutcome::Failed {
            code: object["failure_reason"].as_str().unwrap_or("refund_failed").to_owned(),
            message: "the gateway reported the refund failed".to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway's event can settle a charge before its answer does (they race): both must say the same.
    #[test]
    fn a_decline_reads_the_same_from_the_answer_and_from_the_event() {
        for (code, decline_code, ours, retry) in [
            ("card_declined", "generic_decline", "card_declined", false),
            ("card_declined", "insufficient_funds", "insufficient_funds", true),
            ("card_declined", "try_again_later", "try_again_later", true),
            ("expired_card", "expired_card", "expired_card", false),
        ] {
            let error = serde_json::json!({"type": "card_error", "code": code, "decline_code": decline_code});
            let answer = declined(&serde_json::json!({ "error": error }));
            assert_eq!(answer.code, ours);
            let event = serde_json::json!({"id": "pi_1", "last_payment_error": error});
            let ChargeOutcome::Declined { code, retryable, .. } =
                charge_event_outcome("payment_intent.payment_failed", &event)
            else {
                panic!("a failed charge's event is a decline")
            };
            assert_eq!((code.as_str(), retryable), (ours, retry), "{decline_code}");
            assert_eq!(retryable, RETRYABLE_DECLINES.contains(&answer.code.as_str()));
        }
    }
}
