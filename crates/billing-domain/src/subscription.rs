//! The subscription state machine: every allowed transition is listed here; everything else is refused.

use serde::{Deserialize, Serialize};

use crate::words::words;

words! {
    /// An entry of a subscription's history (`subscription_events.event_type`), as `GET …/events` lists it.
    HistoryEntry {
        Created => "created",
        TrialStarted => "trial_started",
        Activated => "activated",
        RenewalInvoiced => "renewal_invoiced",
        Renewed => "renewed",
        ConversionInvoiced => "conversion_invoiced",
        InvoicePaid => "invoice_paid",
        PaymentFailed => "payment_failed",
        PaymentRetry => "payment_retry",
        Recovered => "recovered",
        PlanChanged => "plan_changed",
        PlanChangeScheduled => "plan_change_scheduled",
        PlanChangeUnscheduled => "plan_change_unscheduled",
        CancelScheduled => "cancel_scheduled",
        Reactivated => "reactivated",
        Canceled => "canceled",
        Expired => "expired",
        TrialReplaced => "trial_replaced",
        PauseScheduled => "pause_scheduled",
        PauseUnscheduled => "pause_unscheduled",
        Paused => "paused",
        Resumed => "resumed",
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "diesel", derive(diesel::AsExpression, diesel::FromSqlRow))]
#[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::Text))]
pub enum SubscriptionStatus {
    /// Created; the first invoice is unpaid.
    Pending,
    /// In a free trial.
    Trial,
    /// Paid and running.
    Active,
    /// A renewal payment failed; dunning is retrying.
    PastDue,
    /// Paused by the customer: nothing is invoiced or charged, usage is refused, until resumed.
    Paused,
    /// Ended by the customer, by dunning, or replaced.
    Canceled,
    /// A trial ended unconverted, or a pending subscription stayed unpaid.
    Expired,
}

/// What happens to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionEvent {
    /// The first payment succeeded, or a trial converted to paid.
    Activate,
    /// A renewal payment succeeded; the period advances.
    Renew,
    /// A renewal (or proration) payment failed.
    PaymentFailed,
    /// A retry during dunning succeeded.
    Recover,
    /// The plan or the seats changed now (an upgrade).
    ChangePlan,
    /// A downgrade was scheduled for the period end.
    SchedulePlanChange,
    /// Cancellation at the period end was requested.
    ScheduleCancel,
    /// A scheduled cancellation was undone.
    Reactivate,
    /// Ended now (by the customer, at a scheduled period end, or when dunning gave up).
    Cancel,
    /// A trial ended unconverted, or a pending subscription was never paid.
    Expire,
    /// A paid subscription replaced this trial.
    ReplaceTrial,
    /// A pause was scheduled for the period end, or the scheduled one undone.
    SchedulePause,
    /// Paused now, or at the period end it was scheduled for.
    Pause,
    /// A paused subscription starts a new period.
    Resume,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} subscription cannot {event:?}")]
pub struct TransitionError {
    pub from: SubscriptionStatus,
    pub event: SubscriptionEvent,
}

impl SubscriptionStatus {
    /// Every status.
    pub const ALL: [SubscriptionStatus; 7] =
        [Self::Pending, Self::Trial, Self::Active, Self::PastDue, Self::Paused, Self::Canceled, Self::Expired];

    /// The stored and rendered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Trial => "trial",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Paused => "paused",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// A user has at most one current subscription (the database enforces it for these statuses).
    pub fn is_current(self) -> bool {
        matches!(self, Self::Pending | Self::Trial | Self::Active | Self::PastDue | Self::Paused)
    }

    /// Gives access to the plan's features (usage can be recorded).
    pub fn grants_access(self) -> bool {
        matches!(self, Self::Trial | Self::Active | Self::PastDue)
    }

    /// The status after `event`, or an error when the transition is not allowed.
    pub fn apply(self, event: SubscriptionEvent) -> Result<SubscriptionStatus, TransitionError> {
        use SubscriptionEvent as E;
        use SubscriptionStatus as S;
        let next = match (self, event) {
            (S::Pending | S::Trial, E::Activate) => S::Active,
            (S::Active, E::Renew) => S::Active,
            (S::Active | S::PastDue, E::PaymentFailed) => S::PastDue,
            (S::PastDue, E::Recover) => S::Active,
            (S::Active, E::ChangePlan | E::SchedulePlanChange) => S::Active,
            (S::Active | S::PastDue, E::ScheduleCancel | E::Reactivate) => self,
            (S::Active, E::SchedulePause) => S::Active,
            (S::Active, E::Pause) => S::Paused,
            (S::Paused, E::Resume) => S::Active,
            (S::Pending | S::Trial | S::Active | S::PastDue | S::Paused, E::Cancel) => S::Canceled,
            (S::Pending | S::Trial, E::Expire) => S::Expired,
            (S::Trial, E::ReplaceTrial) => S::Canceled,
            _ => return Err(TransitionError { from: self, event }),
        };
        Ok(next)
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriptionEvent as E;
    use super::SubscriptionStatus as S;
    use super::*;

    const EVENTS: [E; 14] = [
        E::Activate,
        E::Renew,
        E::PaymentFailed,
        E::Recover,
        E::ChangePlan,
        E::SchedulePlanChange,
        E::ScheduleCancel,
        E::Reactivate,
        E::Cancel,
        E::Expire,
        E::ReplaceTrial,
        E::SchedulePause,
        E::Pause,
        E::Resume,
    ];

    /// The whole table: (from, event) → to. Anything not listed must be refused.
    const ALLOWED: &[(S, E, S)] = &[
        (S::Pending, E::Activate, S::Active),
        (S::Trial, E::Activate, S::Active),
        (S::Active, E::Renew, S::Active),
        (S::Active, E::PaymentFailed, S::PastDue),
        (S::PastDue, E::PaymentFailed, S::PastDue),
        (S::PastDue, E::Recover, S::Active),
        (S::Active, E::ChangePlan, S::Active),
        (S::Active, E::SchedulePlanChange, S::Active),
        (S::Active, E::ScheduleCancel, S::Active),
        (S::PastDue, E::ScheduleCancel, S::PastDue),
        (S::Active, E::Reactivate, S::Active),
        (S::PastDue, E::Reactivate, S::PastDue),
        (S::Pending, E::Cancel, S::Canceled),
        (S::Trial, E::Cancel, S::Canceled),
        (S::Active, E::Cancel, S::Canceled),
        (S::PastDue, E::Cancel, S::Canceled),
        (S::Pending, E::Expire, S::Expired),
        (S::Trial, E::Expire, S::Expired),
        (S::Trial, E::ReplaceTrial, S::Canceled),
        (S::Active, E::SchedulePause, S::Active),
        (S::Active, E::Pause, S::Paused),
        (S::Paused, E::Resume, S::Active),
        (S::Paused, E::Cancel, S::Canceled),
    ];

    #[test]
    fn every_pair_is_either_listed_or_refused() {
        for from in S::ALL {
            for event in EVENTS {
                let expected = ALLOWED.iter().find(|(f, e, _)| *f == from && *e == event).map(|(_, _, to)| *to);
                match expected {
                    Some(to) => assert_eq!(from.apply(event), Ok(to), "{from} {event:?}"),
                    None => assert_eq!(from.apply(event), Err(TransitionError { from, event }), "{from} {event:?}"),
                }
            }
        }
    }

    #[test]
    fn ended_subscriptions_never_move_again() {
        for event in EVENTS {
            assert!(S::Canceled.apply(event).is_err());
            assert!(S::Expired.apply(event).is_err());
        }
    }

    #[test]
    fn names_round_trip_and_current_statuses() {
        for status in S::ALL {
            assert_eq!(S::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        let current: Vec<_> = S::ALL.into_iter().filter(|s| s.is_current()).collect();
        assert_eq!(current, vec![S::Pending, S::Trial, S::Active, S::PastDue, S::Paused]);
        assert!(!S::Pending.grants_access() && !S::Paused.grants_access());
        assert!(S::Trial.grants_access() && S::PastDue.grants_access());
    }
}
