//! The mock gateway: Luhn-valid cards succeed except the test cards of API.md; latency and a random failure rate
//! come from configuration (0 in tests); fault knobs let tests make the next calls fail or time out after
//! charging (an ambiguous result the caller must resolve with the same idempotency key).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use billing_domain::Money;
use futures_util::future::BoxFuture;

use super::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentSource, RefundOutcome, SavedCard};

/// How a test card behaves. A saved card's token carries it (`pm_<tag>_<id>`), so tokens stay good across restarts
/// of this in-memory gateway, as a real gateway's stored cards do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    Decline { code: &'static str, message: &'static str, retryable: bool },
}

/// The declining test cards of API.md: (number, code, message, retryable).
const DECLINING_CARDS: [(&str, &str, &str, bool); 4] = [
    ("4000000000000002", "card_declined", "the card was declined", false),
    ("4000000000009995", "insufficient_funds", "insufficient funds", true),
    ("4000000000000069", "expired_card", "the card has expired", false),
    ("4000000000000119", "processing_error", "a processing error occurred", true),
];

impl Behaviour {
    fn of_card(number: &str) -> Self {
        DECLINING_CARDS
            .iter()
            .find(|(n, ..)| *n == number)
            .map_or(Self::Succeed, |&(_, code, message, retryable)| Self::Decline { code, message, retryable })
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Succeed => "ok",
            Self::Decline { code, .. } => code,
        }
    }

    fn of_token(token: &str) -> Option<Self> {
        let (tag, id) = token.strip_prefix("pm_")?.rsplit_once('_')?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if tag == "ok" {
            return Some(Self::Succeed);
        }
        DECLINING_CARDS.iter().find(|(_, code, ..)| *code == tag).map(|&(_, code, message, retryable)| Self::Decline {
            code,
            message,
            retryable,
        })
    }
}

fn saved_card(card: &super::CardDetails, behaviour: Behaviour) -> SavedCard {
    SavedCard {
        token: format!("pm_{}_{}", behaviour.tag(), uuid::Uuid::new_v4().simple()),
        brand: card.brand().to_owned(),
        last4: card.last4(),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
    }
}

/// An in-memory gateway with the behaviour of a real one's test mode.
#[derive(Debug, Default)]
pub struct MockGateway {
    latency: Duration,
    /// Per mille of calls that fail as unavailable (before charging).
    failure_per_mille: u32,
    charges: Mutex<HashMap<String, ChargeOutcome>>,
    refunds: Mutex<HashMap<String, RefundOutcome>>,
    fail_next: AtomicU32,
    timeout_after_charge_next: AtomicU32,
    charge_count: AtomicU64,
    sequence: AtomicU64,
}

impl MockGateway {
    /// A gateway answering after `latency`, failing `failure_rate` (0.0–1.0) of calls as unavailable.
    pub fn new(latency: Duration, failure_rate: f64) -> Self {
        Self { latency, failure_per_mille: (failure_rate.clamp(0.0, 1.0) * 1000.0) as u32, ..Self::default() }
    }

    /// The next `n` calls fail as unavailable, before charging anything.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` charges are made but answered with a timeout.
    pub fn timeout_after_charge_next(&self, n: u32) {
        self.timeout_after_charge_next.store(n, Ordering::SeqCst);
    }

    /// How many charges (successful or declined) the gateway actually made.
    pub fn charges_made(&self) -> u64 {
        self.charge_count.load(Ordering::SeqCst)
    }

    fn reference(&self, prefix: &str) -> String {
        format!(
            "{prefix}_{:08}{}",
            self.sequence.fetch_add(1, Ordering::SeqCst),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    fn take(counter: &AtomicU32) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    async fn before_call(&self) -> Result<(), GatewayError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if Self::take(&self.fail_next) {
            return Err(GatewayError::Unavailable("injected failure".to_owned()));
        }
        if self.failure_per_mille > 0 && rand::random_range(0..1000) < self.failure_per_mille {
            return Err(GatewayError::Unavailable("random failure".to_owned()));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PaymentGateway for MockGateway {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        Box::pin(async move {
            self.before_call().await?;
            let outcome = {
                let mut charges = lock(&self.charges);
                if let Some(previous) = charges.get(&request.idempotency_key) {
                    previous.clone()
                } else {
                    let (behaviour, card) = match &request.source {
                        PaymentSource::Card(card) => {
                            let behaviour = Behaviour::of_card(&card.number);
                            // Like a real gateway, a declined card is not kept.
                            let keep = request.save_card && behaviour == Behaviour::Succeed;
                            (behaviour, keep.then(|| saved_card(card, behaviour)))
                        }
                        PaymentSource::Token(token) => {
                            (Behaviour::of_token(token).ok_or(GatewayError::UnknownToken)?, None)
                        }
                    };
                    self.charge_count.fetch_add(1, Ordering::SeqCst);
                    let outcome = match behaviour {
                        Behaviour::Succeed => ChargeOutcome::Succeeded { reference: self.reference("ch"), card },
                        Behaviour::Decline { code, message, retryable } => ChargeOutcome::Declined {
                            reference: self.reference("ch"),
                            code: code.to_owned(),
                            message: message.to_owned(),
                            retryable,
                        },
                    };
                    charges.insert(request.idempotency_key.clone(), outcome.clone());
                    outcome
                }
            };
            if Self::take(&self.timeout_after_charge_next) {
                return Err(GatewayError::Timeout);
            }
            Ok(outcome)
        })
    }

    fn save_card(&self, card: super::CardDetails) -> BoxFuture<'_, Result<SavedCard, GatewayError>> {
        Box::pin(async move {
            self.before_call().await?;
            // Saving checks nothing but the number's form (done before): the declining test cards save fine and
            // decline when charged, which is how renewals meet a failing card in tests.
            Ok(saved_card(&card, Behaviour::of_card(&card.number)))
        })
    }

    fn refund(
        &self,
        idempotency_key: String,
        reference: String,
        amount: Money,
    ) -> BoxFuture<'_, Result<RefundOutcome, GatewayError>> {
        Box::pin(async move {
            self.before_call().await?;
            let mut refunds = lock(&self.refunds);
            if let Some(previous) = refunds.get(&idempotency_key) {
                return Ok(previous.clone());
            }
            let known = lock(&self.charges)
                .values()
                .any(|c| matches!(c, ChargeOutcome::Succeeded { reference: r, .. } if *r == reference));
            let outcome = if !known {
                RefundOutcome::Failed { code: "charge_not_found".to_owned(), message: "no such charge".to_owned() }
            } else if amount.is_negative() || amount.is_zero() {
                RefundOutcome::Failed {
                    code: "invalid_amount".to_owned(),
                    message: "the amount must be positive".to_owned(),
                }
            } else {
                RefundOutcome::Succeeded { reference: self.reference("re") }
            };
            refunds.insert(idempotency_key, outcome.clone());
            Ok(outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::CardDetails;
    use billing_domain::Currency;

    fn card(number: &str) -> CardDetails {
        CardDetails {
            number: number.to_owned(),
            exp_month: 12,
            exp_year: 2030,
            cvv: "123".to_owned(),
            cardholder_name: "Ada L".to_owned(),
        }
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::from_code("USD").unwrap_or_else(|| panic!("USD")))
    }

    fn charge(key: &str, source: PaymentSource) -> ChargeRequest {
        ChargeRequest { idempotency_key: key.to_owned(), amount: usd(2999), source, save_card: true }
    }

    #[tokio::test]
    async fn test_cards_behave_as_documented() {
        let gw = MockGateway::default();
        let ok = gw.charge(charge("k1", PaymentSource::Card(card("4242424242424242")))).await;
        assert!(
            matches!(ok, Ok(ChargeOutcome::Succeeded { card: Some(ref c), .. }) if c.last4 == "4242" && c.brand == "visa")
        );
        for (number, code, retryable) in [
            ("4000000000000002", "card_declined", false),
            ("4000000000009995", "insufficient_funds", true),
            ("4000000000000069", "expired_card", false),
            ("4000000000000119", "processing_error", true),
        ] {
            let out = gw.charge(charge(number, PaymentSource::Card(card(number)))).await;
            assert!(
                matches!(out, Ok(ChargeOutcome::Declined { code: ref c, retryable: r, .. }) if c == code && r == retryable),
                "{number}: {out:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_same_idempotency_key_charges_once() {
        let gw = MockGateway::default();
        let first = gw.charge(charge("same", PaymentSource::Card(card("4242424242424242")))).await;
        let again = gw.charge(charge("same", PaymentSource::Card(card("4242424242424242")))).await;
        assert_eq!(first, again);
        assert_eq!(gw.charges_made(), 1);
    }

    #[tokio::test]
    async fn a_timeout_after_charging_is_resolved_by_retrying_with_the_same_key() {
        let gw = MockGateway::default();
        gw.timeout_after_charge_next(1);
        let first = gw.charge(charge("amb", PaymentSource::Card(card("4242424242424242")))).await;
        assert_eq!(first, Err(GatewayError::Timeout));
        assert_eq!(gw.charges_made(), 1, "the charge happened");
        let retry = gw.charge(charge("amb", PaymentSource::Card(card("4242424242424242")))).await;
        assert!(matches!(retry, Ok(ChargeOutcome::Succeeded { .. })));
        assert_eq!(gw.charges_made(), 1, "and was not repeated");
    }

    #[tokio::test]
    async fn injected_failures_charge_nothing() {
        let gw = MockGateway::default();
        gw.fail_next(2);
        for _ in 0..2 {
            assert!(matches!(
                gw.charge(charge("f", PaymentSource::Card(card("4242424242424242")))).await,
                Err(GatewayError::Unavailable(_))
            ));
        }
        assert_eq!(gw.charges_made(), 0);
        assert!(gw.charge(charge("f", PaymentSource::Card(card("4242424242424242")))).await.is_ok());
    }

    #[tokio::test]
    async fn saved_cards_charge_by_token_with_their_behaviour() {
        let gw = MockGateway::default();
        let Ok(ChargeOutcome::Succeeded { card: Some(saved), .. }) =
            gw.charge(charge("s", PaymentSource::Card(card("4242424242424242")))).await
        else {
            panic!("first charge");
        };
        let again = gw.charge(charge("s2", PaymentSource::Token(saved.token.clone()))).await;
        assert!(matches!(again, Ok(ChargeOutcome::Succeeded { .. })));
        assert_eq!(
            gw.charge(charge("s3", PaymentSource::Token("pm_nope".into()))).await,
            Err(GatewayError::UnknownToken)
        );
        // A declining card saves without a charge, and its token declines as the card would.
        let before = gw.charges_made();
        let soft = gw.save_card(card("4000000000009995")).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((soft.last4.as_str(), gw.charges_made()), ("9995", before));
        let declined = gw.charge(charge("s4", PaymentSource::Token(soft.token.clone()))).await;
        assert!(
            matches!(declined, Ok(ChargeOutcome::Declined { ref code, retryable: true, .. }) if code == "insufficient_funds"),
            "{declined:?}"
        );
        // A fresh gateway (a restarted process) still knows what the token is.
        let restarted = MockGateway::default();
        assert!(matches!(
            restarted.charge(charge("s5", PaymentSource::Token(saved.token))).await,
            Ok(ChargeOutcome::Succeeded { .. })
        ));
    }

    #[tokio::test]
    async fn refunds_need_a_known_charge_and_are_idempotent() {
        let gw = MockGateway::default();
        let Ok(ChargeOutcome::Succeeded { reference, .. }) =
            gw.charge(charge("r", PaymentSource::Card(card("4242424242424242")))).await
        else {
            panic!("charge");
        };
        let a = gw.refund("rk".into(), reference.clone(), usd(1000)).await;
        let b = gw.refund("rk".into(), reference, usd(1000)).await;
        assert!(matches!(a, Ok(RefundOutcome::Succeeded { .. })));
        assert_eq!(a, b);
        assert!(matches!(gw.refund("rk2".into(), "ch_unknown".into(), usd(1)).await, Ok(RefundOutcome::Failed { .. })));
    }

    #[test]
    fn card_details_never_print_the_number_or_cvv() {
        let c = card("4242424242424242");
        let shown = format!("{c:?}");
        assert!(!shown.contains("424242424242") && !shown.contains("123"), "{shown}");
        assert_eq!((c.brand(), c.last4().as_str()), ("visa", "4242"));
        assert_eq!(card("5555555555554444").brand(), "mastercard");
        assert_eq!(card("378282246310005").brand(), "amex");
    }
}
