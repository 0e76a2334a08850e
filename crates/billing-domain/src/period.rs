//! Billing periods: calendar months or years counted from the subscription's anchor, so periods never drift
//! (a subscription started on Jan 31 renews on Feb 28, then Mar 31).

use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};

/// How often a plan bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "diesel", derive(diesel::AsExpression, diesel::FromSqlRow))]
#[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::Text))]
pub enum BillingCycle {
    Monthly,
    Yearly,
}

impl BillingCycle {
    /// The stored and rendered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "monthly" => Some(Self::Monthly),
            "yearly" => Some(Self::Yearly),
            _ => None,
        }
    }

    fn months(self) -> u32 {
        match self {
            Self::Monthly => 1,
            Self::Yearly => 12,
        }
    }

    /// The end of period number `index` (0 is the first) of a subscription anchored at `anchor`; the start
    /// of period `index` is the end of period `index - 1`, or `anchor`.
    pub fn period_end(self, anchor: DateTime<Utc>, index: u32) -> DateTime<Utc> {
        let months = self.months().saturating_mul(index.saturating_add(1));
        anchor.checked_add_months(Months::new(months)).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The period containing `at` for a subscription anchored at `anchor`: `(index, start, end)`.
    pub fn period_at(self, anchor: DateTime<Utc>, at: DateTime<Utc>) -> (u32, DateTime<Utc>, DateTime<Utc>) {
        let mut index = 0;
        let mut start = anchor;
        loop {
            let end = self.period_end(anchor, index);
            if at < end || end == DateTime::<Utc>::MAX_UTC {
                return (index, start, end);
            }
            start = end;
            index += 1;
        }
    }
}

/// The end of a trial of `days` days starting at `start`.
pub fn trial_end(start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    start + Duration::days(i64::from(days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().unwrap_or_else(|| panic!("date"))
    }

    #[test]
    fn monthly_periods_keep_the_anchor_day() {
        let anchor = at(2026, 1, 31);
        assert_eq!(BillingCycle::Monthly.period_end(anchor, 0), at(2026, 2, 28));
        assert_eq!(BillingCycle::Monthly.period_end(anchor, 1), at(2026, 3, 31));
        assert_eq!(BillingCycle::Monthly.period_end(anchor, 12), at(2027, 2, 28));
        assert_eq!(BillingCycle::Monthly.period_end(at(2027, 1, 31), 0), at(2027, 2, 28));
        assert_eq!(BillingCycle::Monthly.period_end(at(2028, 1, 31), 0), at(2028, 2, 29), "leap year");
    }

    #[test]
    fn yearly_periods() {
        assert_eq!(BillingCycle::Yearly.period_end(at(2028, 2, 29), 0), at(2029, 2, 28));
        assert_eq!(BillingCycle::Yearly.period_end(at(2028, 2, 29), 3), at(2032, 2, 29));
    }

    #[test]
    fn period_at_finds_the_period_containing_an_instant() {
        let anchor = at(2026, 1, 15);
        assert_eq!(BillingCycle::Monthly.period_at(anchor, anchor), (0, anchor, at(2026, 2, 15)));
        assert_eq!(BillingCycle::Monthly.period_at(anchor, at(2026, 2, 15)), (1, at(2026, 2, 15), at(2026, 3, 15)));
        assert_eq!(BillingCycle::Monthly.period_at(anchor, at(2026, 12, 31)).0, 11);
    }

    #[test]
    fn trials_last_whole_days() {
        assert_eq!(trial_end(at(2026, 1, 1), 30), at(2026, 1, 31));
    }
}
