//! A change of plan or seats on a running subscription: whether it applies now or waits for the period end, and
//! what applying it now charges.
//!
//! A higher price per period is an upgrade and applies now; so does a move to a longer cycle (monthly to yearly),
//! whatever the prices. Anything else is a downgrade, scheduled for the period end, with nothing refunded. An
//! upgrade on the same cycle is prorated to the second over the current period; a move to a longer cycle restarts
//! the period now, at the full new price, with the unused part of the old period credited.

use chrono::{DateTime, Utc};

use crate::invoice::Line;
use crate::pricing::PlanPrice;
use crate::proration::{Price, Proration, ProrationError, prorate};
use crate::{BillingCycle, LineKind, Money};

/// One side of a change: a plan's name, its price and cycle, and the seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seats<'a> {
    pub plan: &'a str,
    pub price: PlanPrice,
    pub cycle: BillingCycle,
    pub quantity: i32,
}

impl Seats<'_> {
    fn price(&self) -> Result<Price, ProrationError> {
        let quantity = u32::try_from(self.quantity).map_err(|_| ProrationError::Overflow)?;
        self.price.as_units(quantity).map_err(|_| ProrationError::Overflow)
    }
}

/// Whether going from `old` to `new` applies now (an upgrade) rather than at the period end.
pub fn applies_now(old: &Seats<'_>, new: &Seats<'_>) -> Result<bool, ProrationError> {
    if old.cycle != new.cycle {
        return Ok(new.cycle == BillingCycle::Yearly);
    }
    Ok(new.price()?.total()?.minor() > old.price()?.total()?.minor())
}

/// What an upgrade applied at `now` charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub proration: Proration,
    /// The period the subscription is in after the change: the rest of the current one, or a new one from `now`
    /// when the cycle changed.
    pub period: (DateTime<Utc>, DateTime<Utc>),
    /// True when the change restarts the period (and the billing anchor) at `now`.
    pub restarts_period: bool,
    /// The credit of the unused old time (negative) and the charge of the new time.
    pub lines: [Line; 2],
}

/// The proration of upgrading from `old` to `new` at `now`, inside the current period `[start, end)`.
pub fn upgrade(
    old: &Seats<'_>,
    new: &Seats<'_>,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<Upgrade, ProrationError> {
    let (proration, period, restarts_period) = if old.cycle == new.cycle {
        (prorate(old.price()?, new.price()?, start, end, now)?, (now, end), false)
    } else {
        let credit = prorate(old.price()?, old.price()?, start, end, now)?.credit;
        let period_end = new.cycle.period_end(now, 0);
        let charge = new.price()?.total()?;
        let seconds = (period_end - now).num_seconds();
        let net = charge.checked_sub(credit).map_err(|_| ProrationError::Overflow)?;
        let proration = Proration { credit, charge, net, remaining_seconds: seconds, period_seconds: seconds };
        (proration, (now, period_end), true)
    };
    let (old_units, new_units) = (old.price()?, new.price()?);
    let credited =
        Money::zero(proration.credit.currency()).checked_sub(proration.credit).map_err(|_| ProrationError::Overflow)?;
    let lines = [
        Line {
            kind: LineKind::ProrationCredit,
            description: format!("Unused time on {} × {}", old.plan, old.quantity),
            quantity: old_units.quantity,
            unit_amount: old_units.unit.to_decimal(),
            amount: credited,
            period: Some((now, end)),
            feature: None,
            tier: None,
        },
        Line {
            kind: LineKind::ProrationCharge,
            description: format!("Remaining time on {} × {}", new.plan, new.quantity),
            quantity: new_units.quantity,
            unit_amount: new_units.unit.to_decimal(),
            amount: proration.charge,
            period: Some(period),
            feature: None,
            tier: None,
        },
    ];
    Ok(Upgrade { proration, period, restarts_period, lines })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::Currency;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::from_code("USD").unwrap_or_else(|| unreachable!()))
    }

    fn seats(plan: &str, minor: i64, cycle: BillingCycle, quantity: i32) -> Seats<'_> {
        Seats { plan, price: PlanPrice { base: usd(minor), per_seat: None }, cycle, quantity }
    }

    #[test]
    fn more_per_period_or_a_longer_cycle_applies_now_and_anything_else_waits() {
        let pro = seats("Pro", 9900, BillingCycle::Monthly, 1);
        let basic = seats("Basic", 2999, BillingCycle::Monthly, 1);
        assert_eq!(applies_now(&basic, &pro), Ok(true));
        assert_eq!(applies_now(&pro, &basic), Ok(false));
        // Four seats of Basic cost more than one of Pro: fewer, dearer seats is a downgrade.
        assert_eq!(applies_now(&Seats { quantity: 4, ..basic }, &pro), Ok(false));
        assert_eq!(applies_now(&pro, &Seats { quantity: 2, ..pro }), Ok(true));
        assert_eq!(applies_now(&pro, &pro), Ok(false));
        let yearly_basic = seats("Basic yearly", 100, BillingCycle::Yearly, 1);
        assert_eq!(applies_now(&pro, &yearly_basic), Ok(true));
        assert_eq!(applies_now(&yearly_basic, &pro), Ok(false));
    }

    #[test]
    fn adding_seats_above_the_included_ones_is_an_upgrade_prorated_on_the_whole_price() -> Result<(), ProrationError> {
        let start = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).single().unwrap_or_default();
        let end = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).single().unwrap_or_default();
        let half = Utc.with_ymd_and_hms(2026, 4, 16, 0, 0, 0).single().unwrap_or_default();
        let seat = crate::pricing::SeatPrice { unit_amount: usd(1000), included_seats: 3 };
        let team = |quantity| Seats {
            plan: "Team",
            price: PlanPrice { base: usd(4900), per_seat: Some(seat) },
            cycle: BillingCycle::Monthly,
            quantity,
        };
        // Within the included seats nothing costs more: a change of seats there is not an upgrade.
        assert_eq!(applies_now(&team(1), &team(3)), Ok(false));
        assert_eq!(applies_now(&team(3), &team(5)), Ok(true));
        assert_eq!(applies_now(&team(5), &team(4)), Ok(false));
        let up = upgrade(&team(3), &team(5), (start, end), half)?;
        // 49.00 → 69.00 for the second half of April.
        assert_eq!((up.proration.credit, up.proration.charge, up.proration.net), (usd(2450), usd(3450), usd(1000)));
        assert_eq!((up.lines[0].quantity, up.lines[0].unit_amount.to_string()), (1, "49.00".to_owned()));
        assert_eq!((up.lines[1].quantity, up.lines[1].unit_amount.to_string()), (1, "69.00".to_owned()));
        assert_eq!(up.lines[1].description, "Remaining time on Team × 5");
        Ok(())
    }

    #[test]
    fn a_same_cycle_upgrade_credits_and_charges_the_rest_of_the_period() -> Result<(), ProrationError> {
        let start = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).single().unwrap_or_default();
        let end = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).single().unwrap_or_default();
        let half = Utc.with_ymd_and_hms(2026, 4, 16, 0, 0, 0).single().unwrap_or_default();
        let basic = seats("Basic", 3000, BillingCycle::Monthly, 1);
        let pro = seats("Pro", 9000, BillingCycle::Monthly, 1);
        let up = upgrade(&basic, &pro, (start, end), half)?;
        assert_eq!((up.proration.credit, up.proration.charge, up.proration.net), (usd(1500), usd(4500), usd(3000)));
        assert_eq!((up.period, up.restarts_period), ((half, end), false));
        assert_eq!(up.lines[0].amount, usd(-1500));
        assert_eq!(up.lines[0].description, "Unused time on Basic × 1");
        assert_eq!(up.lines[1].amount, usd(4500));
        Ok(())
    }

    #[test]
    fn a_move_to_yearly_restarts_the_period_at_the_full_price_less_the_unused_month() -> Result<(), ProrationError> {
        let start = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).single().unwrap_or_default();
        let end = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).single().unwrap_or_default();
        let half = Utc.with_ymd_and_hms(2026, 4, 16, 0, 0, 0).single().unwrap_or_default();
        let monthly = seats("Pro", 3000, BillingCycle::Monthly, 2);
        let yearly = seats("Pro yearly", 30000, BillingCycle::Yearly, 2);
        let up = upgrade(&monthly, &yearly, (start, end), half)?;
        assert_eq!((up.proration.credit, up.proration.charge, up.proration.net), (usd(3000), usd(60000), usd(57000)));
        let next_year = Utc.with_ymd_and_hms(2027, 4, 16, 0, 0, 0).single().unwrap_or_default();
        assert_eq!((up.period, up.restarts_period), ((half, next_year), true));
        assert_eq!(up.lines[1].period, Some((half, next_year)));
        Ok(())
    }
}
