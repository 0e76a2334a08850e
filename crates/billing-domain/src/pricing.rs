//! What SaaS companies charge beyond a flat price: seats above those included, and metered usage billed in arrears
//! per unit, by graduated tiers (each unit at the price of the tier it falls in), by volume tiers (every unit at the
//! price of the tier the total reaches) or by package (per block of N units, rounded up).
//!
//! A usage price may name `included` units, free each period; tiers apply to the units above them. Unit amounts
//! may carry more digits than the currency (`0.0005` USD per API call); every charge is exact until its line is
//! rounded, once, half away from zero, to the currency's minor unit. An invoice's total is the sum of its rounded
//! lines.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

use crate::{Currency, Money, MoneyError};

/// The most decimal places a unit amount may have.
pub const MAX_UNIT_DIGITS: u32 = 12;
/// The most units a line may count (JavaScript's safe integers, so every client reads them exactly).
pub const MAX_UNITS: u64 = 9_007_199_254_740_991;

/// One tier: the units up to `up_to` (inclusive, counted from the first billable unit), or every unit left when
/// `None` (the last tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub up_to: Option<u64>,
    pub unit_amount: Decimal,
}

/// How billable units are priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    PerUnit { unit_amount: Decimal },
    Graduated(Vec<Tier>),
    Volume(Vec<Tier>),
    Package { size: u64, amount: Decimal },
}

impl Model {
    /// The model's name, as a plan states it (`billing`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::PerUnit { .. } => "per_unit",
            Self::Graduated(_) => "graduated",
            Self::Volume(_) => "volume",
            Self::Package { .. } => "package",
        }
    }
}

/// The price of a metered feature billed in arrears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePrice {
    /// Free units each period.
    pub included: u64,
    pub model: Model,
}

/// One line of usage on an invoice: `quantity × unit_amount`, rounded once into `amount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCharge {
    /// Units (packages, for a package price).
    pub quantity: u64,
    /// The price of one unit (one package), possibly with more digits than the currency.
    pub unit_amount: Decimal,
    pub amount: Money,
    /// The tier (from 1) a tiered price charged this line at.
    pub tier: Option<usize>,
}

/// Why a price cannot be read: the field (below the feature) and what is wrong with it.
pub type PriceError = (String, String);

impl UsagePrice {
    /// Reads a feature's billed-usage definition (`{"billing": …, "included"?, "unit_amount"?, "tiers"?,
    /// "package_size"?, "package_amount"?}`). Every amount may have more digits than the plan's currency: lines
    /// round. The error names the field.
    pub fn parse(definition: &Value) -> Result<Self, PriceError> {
        let field = |name: &str| definition.get(name).filter(|v| !v.is_null());
        let included = match field("included") {
            None => 0,
            Some(v) => whole(v).ok_or_else(|| ("included".to_owned(), "a whole number of units ≥ 0".to_owned()))?,
        };
        let model = match field("billing").and_then(Value::as_str) {
            Some("per_unit") => Model::PerUnit { unit_amount: unit_amount(field("unit_amount"), "unit_amount")? },
            Some(kind @ ("graduated" | "volume")) => {
                let tiers = tiers(field("tiers"))?;
                if kind == "graduated" { Model::Graduated(tiers) } else { Model::Volume(tiers) }
            }
            Some("package") => {
                let size = field("package_size")
                    .and_then(whole)
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ("package_size".to_owned(), "a whole number of units ≥ 1 per package".to_owned()))?;
                Model::Package { size, amount: unit_amount(field("package_amount"), "package_amount")? }
            }
            _ => {
                return Err(("billing".to_owned(), "one of per_unit, graduated, volume, package".to_owned()));
            }
        };
        Ok(Self { included, model })
    }

    /// The lines `used` units cost in a period, in `currency`: one line, or one per tier reached for graduated
    /// tiers. No usage is one line of nothing (the invoice still shows the feature was metered).
    pub fn charges(&self, used: u64, currency: Currency) -> Result<Vec<UsageCharge>, MoneyError> {
        let billable = used.saturating_sub(self.included);
        let line = |quantity: u64, unit_amount: Decimal, tier: Option<usize>| -> Result<UsageCharge, MoneyError> {
            let exact = Decimal::from(quantity).checked_mul(unit_amount).ok_or(MoneyError::OutOfRange)?;
            let rounded =
                exact.round_dp_with_strategy(u32::from(currency.digits()), RoundingStrategy::MidpointAwayFromZero);
            Ok(UsageCharge { quantity, unit_amount, amount: Money::from_decimal(rounded, currency)?, tier })
        };
        match &self.model {
            Model::PerUnit { unit_amount } => Ok(vec![line(billable, *unit_amount, None)?]),
            Model::Package { size, amount } => Ok(vec![line(billable.div_ceil(*size), *amount, None)?]),
            Model::Volume(tiers) => {
                let (index, tier) = tiers
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.up_to.is_none_or(|up_to| billable <= up_to))
                    .ok_or(MoneyError::OutOfRange)?;
                Ok(vec![line(billable, tier.unit_amount, Some(index + 1))?])
            }
            Model::Graduated(tiers) => {
                let mut lines = Vec::new();
                let mut below = 0;
                for (index, tier) in tiers.iter().enumerate() {
                    let top = tier.up_to.unwrap_or(u64::MAX).min(billable);
                    if top > below || (billable == 0 && index == 0) {
                        lines.push(line(top - below, tier.unit_amount, Some(index + 1))?);
                    }
                    below = top;
                    if billable <= tier.up_to.unwrap_or(u64::MAX) {
                        break;
                    }
                }
                Ok(lines)
            }
        }
    }
}

/// The price of seats: `unit_amount` per period for each seat above `included_seats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatPrice {
    pub unit_amount: Money,
    pub included_seats: u32,
}

impl SeatPrice {
    /// The seats of `quantity` that are paid for.
    pub fn billable(&self, quantity: u32) -> u32 {
        quantity.saturating_sub(self.included_seats)
    }

    /// What `quantity` seats cost for a period beyond the base price.
    pub fn total(&self, quantity: u32) -> Result<Money, MoneyError> {
        self.unit_amount.checked_mul(i64::from(self.billable(quantity)))
    }
}

/// What a plan charges per period for `quantity` seats. Without a seat price the plan's price is per seat
/// (`price × quantity`, as a Stripe per-unit price); with one, the price is a base fee, paid once, and each seat
/// above the included ones adds the seat price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPrice {
    pub base: Money,
    pub per_seat: Option<SeatPrice>,
}

impl PlanPrice {
    /// The price of one period for `quantity` seats.
    pub fn total(&self, quantity: u32) -> Result<Money, MoneyError> {
        match self.per_seat {
            None => self.base.checked_mul(i64::from(quantity)),
            Some(seats) => self.base.checked_add(seats.total(quantity)?),
        }
    }

    /// The price as a proration sees it: a unit price and a count. A price per seat keeps its seats (the lines
    /// read `Pro × 3` at the seat price); a base fee with seats is one period of the whole (`× 1` at the total).
    pub fn as_units(&self, quantity: u32) -> Result<crate::Price, MoneyError> {
        Ok(match self.per_seat {
            None => crate::Price { unit: self.base, quantity: i64::from(quantity) },
            Some(_) => crate::Price { unit: self.total(quantity)?, quantity: 1 },
        })
    }
}

fn whole(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| {
            value.as_f64().filter(|x| x.fract() == 0.0 && (0.0..=MAX_UNITS as f64).contains(x)).map(|x| x as u64)
        })
        .filter(|n| *n <= MAX_UNITS)
}

/// A unit amount: a decimal string or number ≥ 0 with at most [`MAX_UNIT_DIGITS`] decimal places.
fn unit_amount(value: Option<&Value>, name: &str) -> Result<Decimal, PriceError> {
    let problem = || (name.to_owned(), format!("an amount ≥ 0 with at most {MAX_UNIT_DIGITS} decimal places"));
    let text = match value {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(problem()),
    };
    let amount: Decimal = text.parse().map_err(|_| problem())?;
    if amount.is_sign_negative() || amount.normalize().scale() > MAX_UNIT_DIGITS {
        return Err(problem());
    }
    Ok(amount.normalize())
}

/// Tiers: ascending `up_to`, each ≥ 1, the last one open-ended (`null`), amounts ≥ 0.
fn tiers(value: Option<&Value>) -> Result<Vec<Tier>, PriceError> {
    let Some(Value::Array(items)) = value else {
        return Err(("tiers".to_owned(), "a list of {up_to, unit_amount}, the last with up_to null".to_owned()));
    };
    if items.is_empty() || items.len() > 20 {
        return Err(("tiers".to_owned(), "1 to 20 tiers".to_owned()));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut previous = 0;
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let up_to = match item.get("up_to") {
            None | Some(Value::Null) if last => None,
            None | Some(Value::Null) => {
                return Err((format!("tiers[{i}].up_to"), "only the last tier is open-ended".to_owned()));
            }
            Some(_) if last => {
                return Err((format!("tiers[{i}].up_to"), "the last tier is open-ended (null)".to_owned()));
            }
            Some(v) => match whole(v) {
                Some(n) if n > previous => Some(n),
                _ => {
                    return Err((
                        format!("tiers[{i}].up_to"),
                        format!("a whole number above the previous tier's ({previous})"),
                    ));
                }
            },
        };
        let unit_amount = unit_amount(item.get("unit_amount"), &format!("tiers[{i}].unit_amount"))?;
        previous = up_to.unwrap_or(previous);
        out.push(Tier { up_to, unit_amount });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::from_code(code).unwrap_or_else(|| unreachable!("{code} is supported"))
    }

    fn price(definition: Value, code: &str) -> UsagePrice {
        let _ = currency(code);
        UsagePrice::parse(&definition).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// (quantity, amount, tier) of each line.
    fn lines(price: &UsagePrice, used: u64, code: &str) -> Vec<(u64, String, Option<usize>)> {
        price
            .charges(used, currency(code))
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|c| (c.quantity, c.amount.amount_string(), c.tier))
            .collect()
    }

    fn two_tiers(billing: &str) -> UsagePrice {
        price(
            json!({"billing": billing, "tiers": [{"up_to": 100, "unit_amount": "0.10"}, {"up_to": null, "unit_amount": "0.05"}]}),
            "USD",
        )
    }

    #[test]
    fn graduated_tiers_charge_each_unit_at_its_tier_at_the_edges() {
        let p = two_tiers("graduated");
        assert_eq!(lines(&p, 0, "USD"), [(0, "0.00".into(), Some(1))]);
        assert_eq!(lines(&p, 100, "USD"), [(100, "10.00".into(), Some(1))]);
        assert_eq!(lines(&p, 101, "USD"), [(100, "10.00".into(), Some(1)), (1, "0.05".into(), Some(2))]);
        assert_eq!(lines(&p, 250, "USD"), [(100, "10.00".into(), Some(1)), (150, "7.50".into(), Some(2))]);
    }

    #[test]
    fn volume_tiers_charge_every_unit_at_the_tier_reached() {
        let p = two_tiers("volume");
        assert_eq!(lines(&p, 0, "USD"), [(0, "0.00".into(), Some(1))]);
        assert_eq!(lines(&p, 100, "USD"), [(100, "10.00".into(), Some(1))]);
        assert_eq!(lines(&p, 101, "USD"), [(101, "5.05".into(), Some(2))]);
        // The same 250 units: graduated 17.50, volume 12.50.
        assert_eq!(lines(&p, 250, "USD"), [(250, "12.50".into(), Some(2))]);
    }

    #[test]
    fn packages_round_up_and_included_units_are_free() {
        let p =
            price(json!({"billing": "package", "package_size": 1000, "package_amount": "5", "included": 500}), "USD");
        assert_eq!(lines(&p, 500, "USD"), [(0, "0.00".into(), None)]);
        assert_eq!(lines(&p, 501, "USD"), [(1, "5.00".into(), None)]);
        assert_eq!(lines(&p, 1500, "USD"), [(1, "5.00".into(), None)]);
        assert_eq!(lines(&p, 1501, "USD"), [(2, "10.00".into(), None)]);
    }

    #[test]
    fn sub_minor_unit_prices_round_once_per_line_in_each_currency() {
        let usd = price(json!({"billing": "per_unit", "unit_amount": "0.0005"}), "USD");
        assert_eq!(lines(&usd, 12_345, "USD"), [(12_345, "6.17".into(), None)], "6.1725 rounds to 6.17");
        assert_eq!(lines(&usd, 13_001, "USD"), [(13_001, "6.50".into(), None)], "6.5005 rounds to 6.50");
        let jpy = price(json!({"billing": "per_unit", "unit_amount": "0.5"}), "JPY");
        assert_eq!(lines(&jpy, 3, "JPY"), [(3, "2".into(), None)], "1.5 yen rounds half away from zero");
        let kwd = price(json!({"billing": "per_unit", "unit_amount": "0.0015"}), "KWD");
        assert_eq!(lines(&kwd, 3, "KWD"), [(3, "0.005".into(), None)], "0.0045 dinar rounds to 0.005");
    }

    #[test]
    fn a_plan_price_is_per_seat_or_a_base_fee_with_seats_above_those_included() {
        let usd = currency("USD");
        let per_seat = PlanPrice { base: Money::from_minor(1000, usd), per_seat: None };
        assert_eq!(per_seat.total(3).map(Money::amount_string), Ok("30.00".into()));
        let based = PlanPrice {
            base: Money::from_minor(4900, usd),
            per_seat: Some(SeatPrice { unit_amount: Money::from_minor(1000, usd), included_seats: 3 }),
        };
        assert_eq!(based.total(1).map(Money::amount_string), Ok("49.00".into()), "below the included seats");
        assert_eq!(based.total(3).map(Money::amount_string), Ok("49.00".into()), "exactly the included seats");
        assert_eq!(based.total(4).map(Money::amount_string), Ok("59.00".into()), "one past");
        assert_eq!(based.as_units(5).map(|p| (p.unit.amount_string(), p.quantity)), Ok(("69.00".into(), 1)));
        assert_eq!(per_seat.as_units(5).map(|p| (p.unit.amount_string(), p.quantity)), Ok(("10.00".into(), 5)));
        let kwd = currency("KWD");
        let dinar = PlanPrice {
            base: Money::from_minor(10_500, kwd),
            per_seat: Some(SeatPrice { unit_amount: Money::from_minor(1_250, kwd), included_seats: 0 }),
        };
        assert_eq!(dinar.total(2).map(Money::amount_string), Ok("13.000".into()));
    }

    #[test]
    fn seats_above_the_included_ones_are_paid() {
        let seats = SeatPrice { unit_amount: Money::from_minor(1000, currency("USD")), included_seats: 3 };
        assert_eq!(seats.total(1).map(Money::amount_string), Ok("0.00".into()));
        assert_eq!(seats.total(3).map(Money::amount_string), Ok("0.00".into()));
        assert_eq!(seats.total(5).map(Money::amount_string), Ok("20.00".into()));
        let yen = SeatPrice { unit_amount: Money::from_minor(500, currency("JPY")), included_seats: 0 };
        assert_eq!(yen.total(4).map(Money::amount_string), Ok("2000".into()));
    }

    #[test]
    fn malformed_prices_are_refused_naming_the_field() {
        let refused = |v: Value| UsagePrice::parse(&v).err().map(|e| e.0);
        assert_eq!(refused(json!({"billing": "flat"})), Some("billing".into()));
        assert_eq!(refused(json!({"billing": "per_unit"})), Some("unit_amount".into()));
        assert_eq!(refused(json!({"billing": "per_unit", "unit_amount": "-1"})), Some("unit_amount".into()));
        assert_eq!(
            refused(json!({"billing": "per_unit", "unit_amount": "0.0000000000001"})),
            Some("unit_amount".into())
        );
        assert_eq!(
            refused(json!({"billing": "per_unit", "unit_amount": "1", "included": -5})),
            Some("included".into())
        );
        let tiers = |t: Value| refused(json!({"billing": "graduated", "tiers": t}));
        assert_eq!(tiers(json!([])), Some("tiers".into()));
        assert_eq!(tiers(json!([{"up_to": 10, "unit_amount": "1"}])), Some("tiers[0].up_to".into()));
        assert_eq!(
            tiers(
                json!([{"up_to": 10, "unit_amount": "1"}, {"up_to": 10, "unit_amount": "1"}, {"up_to": null, "unit_amount": "1"}])
            ),
            Some("tiers[1].up_to".into())
        );
        assert_eq!(
            tiers(json!([{"up_to": null, "unit_amount": "1"}, {"up_to": null, "unit_amount": "1"}])),
            Some("tiers[0].up_to".into())
        );
        assert_eq!(tiers(json!([{"up_to": null, "unit_amount": "x"}])), Some("tiers[0].unit_amount".into()));
        assert_eq!(
            refused(json!({"billing": "package", "package_size": 0, "package_amount": "1"})),
            Some("package_size".into())
        );
        assert_eq!(
            refused(json!({"billing": "package", "package_size": 10, "package_amount": "-0.001"})),
            Some("package_amount".into())
        );
    }

    proptest! {
        /// Graduated lines add up, before rounding, to every unit priced one at a time by the tier it falls in.
        #[test]
        fn graduated_equals_pricing_each_unit_alone(used in 0u64..2_000, edges in proptest::collection::btree_set(1u64..1_500, 0..4), cents in proptest::collection::vec(0i64..500, 5)) {
            let edges: Vec<u64> = edges.into_iter().collect();
            let mut tiers: Vec<Tier> = edges.iter().enumerate().map(|(i, e)| Tier { up_to: Some(*e), unit_amount: Decimal::new(cents[i], 3) }).collect();
            tiers.push(Tier { up_to: None, unit_amount: Decimal::new(cents[4], 3) });
            let p = UsagePrice { included: 0, model: Model::Graduated(tiers.clone()) };
            let charges = p.charges(used, currency("USD")).unwrap_or_default();
            let exact: Decimal = charges.iter().map(|c| Decimal::from(c.quantity) * c.unit_amount).sum();
            let one_by_one: Decimal = (1..=used)
                .map(|unit| tiers.iter().find(|t| t.up_to.is_none_or(|u| unit <= u)).map(|t| t.unit_amount).unwrap_or_default())
                .sum();
            prop_assert_eq!(exact, one_by_one);
            prop_assert_eq!(charges.iter().map(|c| c.quantity).sum::<u64>(), used);
            // Each line is off its exact amount by at most half a cent.
            for c in &charges {
                let off = (c.amount.to_decimal() - Decimal::from(c.quantity) * c.unit_amount).abs();
                prop_assert!(off <= Decimal::new(5, 3));
            }
        }
    }
}
