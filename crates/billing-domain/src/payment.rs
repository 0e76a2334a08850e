//! States of the payment service's records.

use crate::words::words;

words! {
    /// A payment attempt (`transactions.status`).
    TransactionStatus {
        /// Recorded before the gateway was asked; its outcome not known here yet.
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

words! {
    /// A refund (`refunds.status`).
    RefundStatus {
        /// Reserved against the payment; the worker has not had the gateway's answer yet.
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

words! {
    /// An `Idempotency-Key` (`idempotency_keys.status`).
    KeyStatus {
        /// Held by a request still running.
        InProgress => "in_progress",
        /// Its response is stored for replay.
        Completed => "completed",
    }
}

impl TransactionStatus {
    /// As the API says it: `success` (seed 003's word, and the answer to a payment's), `pending`, `failed`.
    pub fn api_word(self) -> &'static str {
        match self {
            Self::Succeeded => "success",
            other => other.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_stored_ones_and_a_payment_succeeds_as_success() {
        let words: Vec<_> = TransactionStatus::ALL.iter().map(|s| (s.as_str(), s.api_word())).collect();
        assert_eq!(words, [("pending", "pending"), ("succeeded", "success"), ("failed", "failed")]);
        assert_eq!(serde_json::to_value(RefundStatus::Succeeded).unwrap_or_default(), "succeeded");
        assert_eq!(RefundStatus::parse("failed"), Some(RefundStatus::Failed));
        assert_eq!(RefundStatus::parse("Failed"), None);
    }
}
