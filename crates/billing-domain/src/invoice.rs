//! Invoice numbers and totals.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Utc};

use crate::words::words;
use rust_decimal::Decimal;

use crate::pricing::UsageCharge;
use crate::{Money, MoneyError};

words! {
    /// Where an invoice stands (`invoices.status`). Paid and void invoices never change again.
    InvoiceStatus {
        /// Being assembled; no number yet.
        Draft => "draft",
        /// Finalized and numbered; payable.
        Open => "open",
        Paid => "paid",
        /// Canceled before payment; its number stays used.
        Void => "void",
        /// Dunning gave up.
        Uncollectible => "uncollectible",
    }
}

words! {
    /// Why an invoice was issued (`invoices.kind`).
    InvoiceKind {
        /// A new subscription's first period.
        Initial => "initial",
        /// The next period of a running subscription.
        Renewal => "renewal",
        /// The difference an upgrade charges now.
        Proration => "proration",
        /// A trial's first paid period.
        TrialConversion => "trial_conversion",
        /// The usage of the last period of a subscription that ended at its period end.
        Final => "final",
    }
}

words! {
    /// What a line of an invoice (or a line waiting for the next invoice) charges or credits.
    LineKind {
        /// A period of the plan.
        Subscription => "subscription",
        /// The unused part of the previous plan, credited.
        ProrationCredit => "proration_credit",
        /// The rest of the period on the new plan, charged.
        ProrationCharge => "proration_charge",
        /// Metered usage of the period that ended, billed in arrears (one line per tier reached).
        Usage => "usage",
        /// Seats above those the plan includes.
        Seats => "seats",
    }
}

/// `INV-YYYYMM-NNNN`: the month of finalization and the invoice's place in that month, from 1, without gaps.
/// The sequence is zero-padded to four digits and simply grows past 9999.
pub fn invoice_number(finalized_at: DateTime<Utc>, sequence: u32) -> String {
    document_number("INV", finalized_at, sequence)
}

/// `CN-YYYYMM-NNNN`: a credit note's number, in a sequence of its own, like an invoice's.
pub fn credit_note_number(issued_at: DateTime<Utc>, sequence: u32) -> String {
    document_number("CN", issued_at, sequence)
}

fn document_number(prefix: &str, at: DateTime<Utc>, sequence: u32) -> String {
    let mut number = String::with_capacity(16);
    let _ = write!(number, "{prefix}-{:04}{:02}-{sequence:04}", at.year(), at.month());
    number
}

/// The month key an invoice number sequence runs in (`202611`).
pub fn sequence_month(finalized_at: DateTime<Utc>) -> i32 {
    finalized_at.year() * 100 + i32::try_from(finalized_at.month()).unwrap_or(1)
}

/// One line of an invoice (or a line waiting for the subscription's next invoice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    pub description: String,
    pub quantity: i64,
    /// The price of one unit: the currency's digits, or more for usage (`0.0005` per call).
    pub unit_amount: Decimal,
    /// `unit_amount × quantity` rounded once to the minor unit for a period or usage line; a proration's share of
    /// a period otherwise.
    pub amount: Money,
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The metered feature of a usage line.
    pub feature: Option<String>,
    /// The tier (from 1) a usage line was priced at.
    pub tier: Option<u32>,
}

impl Line {
    /// A period of `plan` for `quantity` seats: `Pro (monthly) × 3` (a first invoice's period is set once paid).
    pub fn subscription(
        plan: &str,
        cycle: crate::BillingCycle,
        quantity: i32,
        unit_amount: Money,
        period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Line, MoneyError> {
        Ok(Line {
            kind: LineKind::Subscription,
            description: format!("{plan} ({}) × {quantity}", cycle.as_str()),
            quantity: i64::from(quantity),
            unit_amount: unit_amount.to_decimal(),
            amount: unit_amount.checked_mul(i64::from(quantity))?,
            period,
            feature: None,
            tier: None,
        })
    }

    /// One period of a plan's price for `quantity` seats: one line at the price per seat, or the base fee and a
    /// `seats` line for the seats above those included (`Seats: 5, 3 included`, 2 × the seat price).
    pub fn period_fee(
        plan: &str,
        cycle: crate::BillingCycle,
        price: &crate::pricing::PlanPrice,
        quantity: i32,
        period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Vec<Line>, MoneyError> {
        let Some(seats) = price.per_seat else {
            return Ok(vec![Line::subscription(plan, cycle, quantity, price.base, period)?]);
        };
        let count = u32::try_from(quantity).map_err(|_| MoneyError::OutOfRange)?;
        let billable = seats.billable(count);
        Ok(vec![
            Line::subscription(plan, cycle, 1, price.base, period)?,
            Line {
                kind: LineKind::Seats,
                description: format!("Seats: {quantity}, {} included", seats.included_seats),
                quantity: i64::from(billable),
                unit_amount: seats.unit_amount.to_decimal(),
                amount: seats.total(count)?,
                period,
                feature: None,
                tier: None,
            },
        ])
    }

    /// The usage of `feature` in `period` priced by one of its charges: `api_calls: 12345 × 0.0005`, with the tier
    /// when the price has tiers.
    pub fn usage(
        feature: &str,
        charge: &UsageCharge,
        period: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Line, MoneyError> {
        let tier = charge.tier.map(|t| u32::try_from(t).unwrap_or(u32::MAX));
        let description = match tier {
            Some(t) => format!("{feature}, tier {t}: {} × {}", charge.quantity, charge.unit_amount),
            None => format!("{feature}: {} × {}", charge.quantity, charge.unit_amount),
        };
        Ok(Line {
            kind: LineKind::Usage,
            description,
            quantity: i64::try_from(charge.quantity).map_err(|_| MoneyError::OutOfRange)?,
            unit_amount: charge.unit_amount,
            amount: charge.amount,
            period: Some(period),
            feature: Some(feature.to_owned()),
            tier,
        })
    }
}

/// The sum of `amounts`, all in `currency`'s units.
pub fn total(amounts: impl IntoIterator<Item = Money>, zero: Money) -> Result<Money, MoneyError> {
    amounts.into_iter().try_fold(zero, Money::checked_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_its_variant_and_nothing_else_does() {
        for status in InvoiceStatus::ALL {
            assert_eq!(InvoiceStatus::parse(status.as_str()), Some(*status));
        }
        let kinds: Vec<_> = InvoiceKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, ["initial", "renewal", "proration", "trial_conversion", "final"]);
        assert_eq!(LineKind::parse("proration_credit"), Some(LineKind::ProrationCredit));
        assert_eq!(LineKind::parse("proration"), None);
        assert_eq!(serde_json::to_value(InvoiceStatus::Uncollectible).unwrap_or_default(), "uncollectible");
    }
    use crate::Currency;
    use chrono::TimeZone;

    #[test]
    fn numbers_follow_the_format() {
        let at = Utc.with_ymd_and_hms(2026, 3, 9, 10, 0, 0).single().unwrap_or_else(|| panic!("date"));
        assert_eq!(invoice_number(at, 1), "INV-202603-0001");
        assert_eq!(invoice_number(at, 42), "INV-202603-0042");
        assert_eq!(invoice_number(at, 12345), "INV-202603-12345");
        assert_eq!(credit_note_number(at, 7), "CN-202603-0007");
        assert_eq!(sequence_month(at), 202_603);
    }

    #[test]
    fn totals_add_exactly_and_refuse_mixed_currencies() {
        let usd = Currency::from_code("USD").unwrap_or_else(|| panic!("USD"));
        let eur = Currency::from_code("EUR").unwrap_or_else(|| panic!("EUR"));
        let lines = [Money::from_minor(2999, usd), Money::from_minor(-1500, usd), Money::from_minor(1, usd)];
        assert_eq!(total(lines, Money::zero(usd)).map(Money::minor), Ok(1500));
        assert!(total([Money::from_minor(1, eur)], Money::zero(usd)).is_err());
    }
}
