//! Proration of a mid-period change, to the second and in minor units.
//!
//! At instant `at` inside `[start, end)`, the customer is credited the unused part of what they paid for the
//! old plan and charged the rest of the period on the new one. Each part is rounded once, half up, so the
//! customer's total for the period is within one minor unit of the exact pro-rata amount.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Money;

/// A price for a period: a unit price and a quantity (seats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub unit: Money,
    pub quantity: i64,
}

impl Price {
    /// `unit × quantity`.
    pub fn total(self) -> Result<Money, ProrationError> {
        self.unit.checked_mul(self.quantity).map_err(|_| ProrationError::Overflow)
    }
}

/// The result of a mid-period change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Proration {
    /// The unused part of the old price, returned.
    #[serde(serialize_with = "as_amount")]
    pub credit: Money,
    /// The rest of the period at the new price.
    #[serde(serialize_with = "as_amount")]
    pub charge: Money,
    /// `charge - credit`: positive is due now; negative would be a credit (downgrades are not prorated).
    #[serde(serialize_with = "as_amount")]
    pub net: Money,
    /// Seconds left in the period at the change.
    pub remaining_seconds: i64,
    /// Length of the period in seconds.
    pub period_seconds: i64,
}

fn as_amount<S: serde::Serializer>(money: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&money.amount_string())
}

/// Why a proration could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProrationError {
    #[error("the change is outside the current period")]
    OutsidePeriod,
    #[error("the old and new prices are in different currencies")]
    CurrencyMismatch,
    #[error("amount out of range")]
    Overflow,
}

/// `total × num / den`, rounded half up (amounts here are never negative).
fn share(total: i64, num: i64, den: i64) -> i64 {
    let product = i128::from(total) * i128::from(num);
    let den = i128::from(den);
    let rounded = (2 * product + den) / (2 * den);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// Prorates a change from `old` to `new` at `at`, in the period `[start, end)`.
pub fn prorate(
    old: Price,
    new: Price,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Proration, ProrationError> {
    if old.unit.currency() != new.unit.currency() {
        return Err(ProrationError::CurrencyMismatch);
    }
    if !(start <= at && at < end) {
        return Err(ProrationError::OutsidePeriod);
    }
    let period_seconds = (end - start).num_seconds().max(1);
    let remaining_seconds = (end - at).num_seconds().clamp(0, period_seconds);
    let currency = old.unit.currency();
    let credit = Money::from_minor(share(old.total()?.minor(), remaining_seconds, period_seconds), currency);
    let charge = Money::from_minor(share(new.total()?.minor(), remaining_seconds, period_seconds), currency);
    let net = charge.checked_sub(credit).map_err(|_| ProrationError::Overflow)?;
    Ok(Proration { credit, charge, net, remaining_seconds, period_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn money(minor: i64, code: &str) -> Money {
        Money::from_minor(minor, Currency::from_code(code).unwrap_or_else(|| panic!("{code}")))
    }
    fn price(minor: i64, quantity: i64) -> Price {
        Price { unit: money(minor, "USD"), quantity }
    }
    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).single().unwrap_or_else(|| panic!("date"))
    }

    #[test]
    fn halfway_through_a_30_day_month() {
        let (s, e) = (start(), start() + Duration::days(30));
        let p = prorate(price(2999, 1), price(9900, 1), s, e, s + Duration::days(15));
        let p = p.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.credit.amount_string(), "15.00", "29.99 / 2 = 14.995, rounded half up");
        assert_eq!(p.charge.amount_string(), "49.50");
        assert_eq!(p.net.amount_string(), "34.50");
        assert_eq!((p.remaining_seconds, p.period_seconds), (15 * 86_400, 30 * 86_400));
    }

    #[test]
    fn seats_multiply_the_price() {
        let (s, e) = (start(), start() + Duration::days(30));
        let p = prorate(price(1000, 2), price(1000, 5), s, e, s + Duration::days(10)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.credit.minor(), 1333, "2 seats × 10.00 × 20/30");
        assert_eq!(p.charge.minor(), 3333, "5 seats × 10.00 × 20/30");
        assert_eq!(p.net.minor(), 2000);
    }

    #[test]
    fn zero_decimal_currencies_prorate_in_whole_units() {
        let (s, e) = (start(), start() + Duration::days(30));
        let p = prorate(
            Price { unit: money(1000, "JPY"), quantity: 1 },
            Price { unit: money(3000, "JPY"), quantity: 1 },
            s,
            e,
            s + Duration::days(10),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.credit.amount_string(), p.charge.amount_string(), p.net.amount_string()),
            ("667".into(), "2000".into(), "1333".into())
        );
    }

    #[test]
    fn refuses_changes_outside_the_period_and_mixed_currencies() {
        let (s, e) = (start(), start() + Duration::days(30));
        assert_eq!(prorate(price(1, 1), price(2, 1), s, e, e), Err(ProrationError::OutsidePeriod));
        assert_eq!(
            prorate(price(1, 1), price(2, 1), s, e, s - Duration::seconds(1)),
            Err(ProrationError::OutsidePeriod)
        );
        let eur = Price { unit: money(100, "EUR"), quantity: 1 };
        assert_eq!(prorate(price(1, 1), eur, s, e, s), Err(ProrationError::CurrencyMismatch));
    }

    #[test]
    fn a_change_at_the_start_swaps_the_whole_price() {
        let (s, e) = (start(), start() + Duration::days(31));
        let p = prorate(price(2999, 1), price(9900, 1), s, e, s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.credit.minor(), p.charge.minor()), (2999, 9900));
    }

    proptest! {
        /// Whatever the instant, prices, seats and period length, the customer pays for the period within one
        /// minor unit of the exact pro-rata amount: nothing is created or lost beyond rounding once per part.
        #[test]
        fn a_change_never_creates_or_loses_more_than_one_minor_unit(
            old_unit in 0_i64..10_000_000, new_unit in 0_i64..10_000_000,
            old_qty in 1_i64..50, new_qty in 1_i64..50,
            period_secs in 1_i64..(366 * 86_400), at_frac in 0.0_f64..1.0,
        ) {
            let s = start();
            let e = s + Duration::seconds(period_secs);
            let elapsed = ((period_secs as f64) * at_frac) as i64;
            let at = s + Duration::seconds(elapsed.min(period_secs - 1));
            let p = prorate(price(old_unit, old_qty), price(new_unit, new_qty), s, e, at).unwrap_or_else(|e| panic!("{e}"));
            let (old_total, new_total) = (i128::from(old_unit * old_qty), i128::from(new_unit * new_qty));
            let remaining = i128::from(p.remaining_seconds);
            let period = i128::from(period_secs);
            // Paid = old price for the elapsed part + new price for the rest; exact value as a rational × period.
            let paid = old_total - i128::from(p.credit.minor()) + i128::from(p.charge.minor());
            let exact_times_period = old_total * (period - remaining) + new_total * remaining;
            prop_assert!((paid * period - exact_times_period).abs() <= period, "paid {paid}");
            prop_assert!(p.credit.minor() >= 0 && i128::from(p.credit.minor()) <= old_total);
            prop_assert!(p.charge.minor() >= 0 && i128::from(p.charge.minor()) <= new_total);
        }

        /// Changing to the same price, or back and forth at one instant, costs exactly nothing.
        #[test]
        fn same_price_changes_net_to_zero(unit in 0_i64..10_000_000, qty in 1_i64..50, secs in 1_i64..(31 * 86_400), at in 0_i64..(31 * 86_400)) {
            let s = start();
            let e = s + Duration::seconds(secs);
            let at = s + Duration::seconds(at % secs);
            let p = prorate(price(unit, qty), price(unit, qty), s, e, at).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(p.net.minor(), 0);
        }

        /// Later changes never credit more than earlier ones.
        #[test]
        fn credit_shrinks_as_the_period_passes(unit in 1_i64..10_000_000, a in 0_i64..(30 * 86_400), b in 0_i64..(30 * 86_400)) {
            let s = start();
            let e = s + Duration::days(30);
            let (early, late) = (a.min(b), a.max(b));
            let p1 = prorate(price(unit, 1), price(unit, 1), s, e, s + Duration::seconds(early)).unwrap_or_else(|e| panic!("{e}"));
            let p2 = prorate(price(unit, 1), price(unit, 1), s, e, s + Duration::seconds(late)).unwrap_or_else(|e| panic!("{e}"));
            prop_assert!(p1.credit.minor() >= p2.credit.minor());
        }
    }
}
