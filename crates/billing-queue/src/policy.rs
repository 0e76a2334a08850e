//! Per-queue retry policies.

use std::sync::OnceLock;
use std::time::Duration;

static TIME_SCALE: OnceLock<f64> = OnceLock::new();

/// Scales every default policy's delays and visibility timeouts in this process (tests only; set once at start).
pub fn set_time_scale(scale: f64) {
    let _ = TIME_SCALE.set(scale);
}

/// How a queue retries: exponential backoff `base × multiplier^(attempt-1)`, capped, plus random jitter; a job
/// claimed and not finished within the visibility timeout is handed out again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Deliveries before the job goes to the failed list (1 + retries).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    /// Up to this much is added at random to each delay, so retries of many jobs spread out.
    pub jitter: Duration,
    pub visibility_timeout: Duration,
}

impl Policy {
    /// The delay before the retry that follows delivery number `attempt`, without jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.multiplier.powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        let secs = self.base_delay.as_secs_f64() * exp;
        if !secs.is_finite() || secs >= self.max_delay.as_secs_f64() {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The backoff plus a random jitter.
    pub fn delay_with_jitter(&self, attempt: u32) -> Duration {
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(0);
        let extra = if jitter_ms == 0 { 0 } else { rand::random_range(0..=jitter_ms) };
        self.backoff(attempt) + Duration::from_millis(extra)
    }

    /// The `queue-probe` binary's policy: quick retries so a test sees every outcome within seconds. Its producers
    /// must use the same policy, since the envelope carries `max_attempts`.
    pub fn probe(visibility_timeout: Duration) -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_secs(2),
            jitter: Duration::from_millis(20),
            visibility_timeout,
        }
    }
}

/// The six queues of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    SubPaymentInitiation,
    SubTrialPayment,
    SubPlanChange,
    SubUsageSync,
    PaySubscriptionUpdate,
    PayRefundInitiation,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Seed 003's numbers: 3 retries, 60 s base, ×2, capped at an hour, 10 s jitter, 120 s lock.
const SEED_003: Policy = Policy {
    max_attempts: 4,
    base_delay: secs(60),
    multiplier: 2.0,
    max_delay: secs(3600),
    jitter: secs(10),
    visibility_timeout: secs(120),
};

impl QueueName {
    /// Every queue.
    pub const ALL: [QueueName; 6] = [
        Self::SubPaymentInitiation,
        Self::SubTrialPayment,
        Self::SubPlanChange,
        Self::SubUsageSync,
        Self::PaySubscriptionUpdate,
        Self::PayRefundInitiation,
    ];

    /// The queue's name (`q:sub:payment_initiation` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubPaymentInitiation => "q:sub:payment_initiation",
            Self::SubTrialPayment => "q:sub:trial_payment",
            Self::SubPlanChange => "q:sub:plan_change",
            Self::SubUsageSync => "q:sub:usage_sync",
            Self::PaySubscriptionUpdate => "q:pay:subscription_update",
            Self::PayRefundInitiation => "q:pay:refund_initiation",
        }
    }

    /// The queue called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }

    /// The default policy (scaled by [`set_time_scale`], which is 1 outside tests).
    pub fn policy(self) -> Policy {
        let scale = TIME_SCALE.get().copied().unwrap_or(1.0);
        let p = self.unscaled_policy();
        Policy {
            base_delay: p.base_delay.mul_f64(scale),
            max_delay: p.max_delay.mul_f64(scale),
            jitter: p.jitter.mul_f64(scale),
            visibility_timeout: p.visibility_timeout.mul_f64(scale),
            ..p
        }
    }

    fn unscaled_policy(self) -> Policy {
        match self {
            Self::SubPaymentInitiation | Self::SubTrialPayment | Self::SubPlanChange | Self::PayRefundInitiation => {
                SEED_003
            }
            // Folding usage is cheap and must catch up quickly after an outage.
            Self::SubUsageSync => Policy {
                max_attempts: 10,
                base_delay: secs(5),
                max_delay: secs(300),
                jitter: secs(2),
                visibility_timeout: secs(60),
                ..SEED_003
            },
            // Webhook delivery retries for about a day, like the big webhook senders: 16 deliveries, 30 s doubling
            // to a 3-hour cap (30 s, 1 min, 2 min … 2 h 8 min, then every 3 h): about 22 hours in all.
            Self::PaySubscriptionUpdate => Policy {
                max_attempts: 16,
                base_delay: secs(30),
                max_delay: secs(3 * 3600),
                jitter: secs(30),
                visibility_timeout: secs(60),
                ..SEED_003
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = QueueName::SubPaymentInitiation.policy();
        assert_eq!((p.backoff(1), p.backoff(2), p.backoff(3)), (secs(60), secs(120), secs(240)));
        assert_eq!(p.backoff(10), secs(3600));
        assert_eq!(p.backoff(1000), secs(3600));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let p = QueueName::SubPaymentInitiation.policy();
        for _ in 0..200 {
            let d = p.delay_with_jitter(2);
            assert!(d >= secs(120) && d <= secs(130), "{d:?}");
        }
    }

    #[test]
    fn webhook_delivery_retries_for_about_a_day() {
        let p = QueueName::PaySubscriptionUpdate.policy();
        let total: Duration = (1..p.max_attempts).map(|a| p.backoff(a)).sum();
        assert!(total > secs(18 * 3600) && total < secs(30 * 3600), "{total:?}");
    }

    #[test]
    fn names_round_trip() {
        for q in QueueName::ALL {
            assert_eq!(QueueName::parse(q.as_str()), Some(q));
        }
    }
}
