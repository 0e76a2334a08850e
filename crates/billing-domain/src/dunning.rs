//! Dunning: when to try a failed invoice again. Retries are counted from the invoice's due time (the period end
//! for a renewal), at fixed offsets (Stripe's smart retries aside, the usual default is 1, 3, 5 and 7 days); a
//! hard decline is never retried.

use chrono::{DateTime, Duration, Utc};

/// What to do after a charge attempt of an invoice failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Stop: the decline was hard, or every retry was used.
    GiveUp(GiveUpReason),
}

/// Why dunning stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    HardDecline,
    RetriesExhausted,
}

impl GiveUpReason {
    /// The reason recorded on the canceled subscription.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardDecline => "payment_failed_hard_decline",
            Self::RetriesExhausted => "dunning_exhausted",
        }
    }
}

/// Decides the next step after attempt number `attempt` (1 is the first charge) failed. `offsets` are the retry
/// times after `due_at`, in increasing order: attempt `n + 1` is retry `n`.
pub fn after_failure(offsets: &[Duration], due_at: DateTime<Utc>, attempt: u32, retryable: bool) -> AfterFailure {
    if !retryable {
        return AfterFailure::GiveUp(GiveUpReason::HardDecline);
    }
    match usize::try_from(attempt).ok().and_then(|n| offsets.get(n.checked_sub(1)?)) {
        Some(offset) => AfterFailure::RetryAt(due_at + *offset),
        None => AfterFailure::GiveUp(GiveUpReason::RetriesExhausted),
    }
}

/// Decline codes a retry cannot fix, for events that do not say whether they are retryable.
pub fn is_hard_decline(code: &str) -> bool {
    matches!(code, "card_declined" | "expired_card" | "stolen_card" | "lost_card" | "fraudulent" | "do_not_honor")
}

/// Whether a decline may be retried: as the gateway said, or by its code when it did not say.
pub fn is_retryable(said: Option<bool>, code: &str) -> bool {
    said.unwrap_or_else(|| !is_hard_decline(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn days(d: &[i64]) -> Vec<Duration> {
        d.iter().map(|n| Duration::days(*n)).collect()
    }

    #[test]
    fn soft_declines_retry_at_each_offset_then_give_up() {
        let due = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).single().unwrap_or_else(|| panic!("date"));
        let offsets = days(&[1, 3, 5, 7]);
        let at: Vec<_> = (1..=5).map(|attempt| after_failure(&offsets, due, attempt, true)).collect();
        assert_eq!(
            at,
            vec![
                AfterFailure::RetryAt(due + Duration::days(1)),
                AfterFailure::RetryAt(due + Duration::days(3)),
                AfterFailure::RetryAt(due + Duration::days(5)),
                AfterFailure::RetryAt(due + Duration::days(7)),
                AfterFailure::GiveUp(GiveUpReason::RetriesExhausted),
            ]
        );
    }

    #[test]
    fn hard_declines_are_never_retried() {
        let due = Utc::now();
        assert_eq!(after_failure(&days(&[1, 3]), due, 1, false), AfterFailure::GiveUp(GiveUpReason::HardDecline));
        assert_eq!(after_failure(&[], due, 1, true), AfterFailure::GiveUp(GiveUpReason::RetriesExhausted));
        assert_eq!(after_failure(&days(&[1]), due, 0, true), AfterFailure::GiveUp(GiveUpReason::RetriesExhausted));
        assert!(is_hard_decline("card_declined") && !is_hard_decline("insufficient_funds"));
        assert!(!is_retryable(None, "card_declined") && is_retryable(None, "insufficient_funds"));
        assert!(is_retryable(Some(true), "card_declined") && !is_retryable(Some(false), "insufficient_funds"));
    }
}
