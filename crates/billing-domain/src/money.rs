//! Exact money: an integer count of the currency's minor units.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// An ISO 4217 currency with its minor digits and the smallest amount a card charge may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "diesel", derive(diesel::AsExpression, diesel::FromSqlRow))]
#[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::Text))]
pub struct Currency {
    code: &'static str,
    digits: u8,
    /// The minimum charge, in minor units.
    min_charge_minor: i64,
}

/// Minimum charges follow what a major card processor publishes (USD 0.50, GBP 0.30, JPY 50, AED 2.00 …);
/// for currencies it does not list, a minimum of about half a US dollar, rounded to a sensible figure.
const CURRENCIES: &[Currency] = &[
    c("AED", 2, 200),
    c("ARS", 2, 50000),
    c("AUD", 2, 50),
    c("BGN", 2, 100),
    c("BHD", 3, 200),
    c("BRL", 2, 50),
    c("CAD", 2, 50),
    c("CHF", 2, 50),
    c("CLP", 0, 500),
    c("CNY", 2, 400),
    c("COP", 2, 200000),
    c("CZK", 2, 1500),
    c("DKK", 2, 250),
    c("EGP", 2, 2500),
    c("EUR", 2, 50),
    c("GBP", 2, 30),
    c("HKD", 2, 400),
    c("HUF", 2, 17500),
    c("IDR", 2, 800000),
    c("ILS", 2, 200),
    c("INR", 2, 50),
    c("ISK", 0, 70),
    c("JOD", 3, 400),
    c("JPY", 0, 50),
    c("KES", 2, 7000),
    c("KRW", 0, 700),
    c("KWD", 3, 200),
    c("MXN", 2, 1000),
    c("MYR", 2, 200),
    c("NGN", 2, 80000),
    c("NOK", 2, 300),
    c("NZD", 2, 50),
    c("OMR", 3, 200),
    c("PEN", 2, 200),
    c("PHP", 2, 3000),
    c("PLN", 2, 200),
    c("QAR", 2, 200),
    c("RON", 2, 200),
    c("SAR", 2, 200),
    c("SEK", 2, 300),
    c("SGD", 2, 50),
    c("THB", 2, 1000),
    c("TRY", 2, 1500),
    c("TWD", 2, 1500),
    c("USD", 2, 50),
    c("VND", 0, 13000),
    c("ZAR", 2, 900),
];

const fn c(code: &'static str, digits: u8, min_charge_minor: i64) -> Currency {
    Currency { code, digits, min_charge_minor }
}

impl Currency {
    /// The currency with this upper-case ISO code.
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    /// The currency a client named, in any case (`usd` is `USD`): ISO 4217 codes are case-insensitive to people.
    pub fn from_client_code(code: &str) -> Option<Currency> {
        Self::from_code(&code.to_ascii_uppercase())
    }

    /// Every supported currency, sorted by code.
    pub fn all() -> &'static [Currency] {
        CURRENCIES
    }

    /// A stored amount as text with this currency's digits (`12.5` in USD is `12.50`). Amounts are stored with
    /// the currency's digits, so the fallback (the decimal as stored) only shows a row written by hand.
    pub fn render(self, value: Decimal) -> String {
        Money::from_decimal(value, self).map(Money::amount_string).unwrap_or_else(|_| value.normalize().to_string())
    }

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point (USD 2, JPY 0, KWD 3).
    pub fn digits(self) -> u8 {
        self.digits
    }

    /// The smallest amount a card charge may be.
    pub fn min_charge(self) -> Money {
        Money { minor: self.min_charge_minor, currency: self }
    }

    /// Minor units in one major unit (100 for USD).
    pub fn minor_per_major(self) -> i64 {
        10_i64.pow(u32::from(self.digits))
    }

    /// An anchored regular expression (an OpenAPI `pattern`) that only amounts this currency can charge match:
    /// at least the minimum charge, written with no more than the currency's digits; with `free`, zero too.
    /// It leaves out a few chargeable amounts (from the minimum up to the next round figure: `"175.50"` HUF),
    /// never lets in one [`AmountText::to_money`] or the minimum would refuse, so generated requests are valid.
    pub fn amount_pattern(self, free: bool) -> String {
        let fraction = match self.digits {
            0 => String::new(),
            d => format!(r"(\.[0-9]{{1,{d}}})?"),
        };
        // The whole part: at least the minimum in major units, rounded up.
        let floor = self.min_charge_minor.div_euclid(self.minor_per_major())
            + i64::from(self.min_charge_minor % self.minor_per_major() != 0);
        let floor = floor.max(1).to_string();
        let (lead, rest) = (floor.as_bytes()[0] - b'0', floor.len() - 1);
        let round = floor[1..].bytes().all(|b| b == b'0');
        let first = if round { lead } else { lead + 1 };
        let longest = MAX_MAJOR.to_string().len() - 1;
        let mut wholes = Vec::new();
        if first <= 9 {
            wholes.push(format!("[{first}-9][0-9]{{{rest}}}"));
        }
        wholes.push(format!("[1-9][0-9]{{{},{}}}", rest + 1, longest - 1));
        let zero = match (free, self.digits) {
            (false, _) => String::new(),
            (true, 0) => "0|".to_owned(),
            (true, d) => format!(r"0(\.0{{1,{d}}})?|"),
        };
        format!("^({zero}({}){fraction})$", wholes.join("|"))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).ok_or_else(|| de::Error::custom(MoneyError::UnknownCurrency(code)))
    }
}

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unsupported currency {0:?} (an upper-case ISO 4217 code such as USD)")]
    UnknownCurrency(String),
    #[error("not a decimal amount")]
    NotADecimal,
    #[error("{currency} amounts have at most {digits} decimal places")]
    TooManyDigits { currency: &'static str, digits: u8 },
    #[error("amount out of range")]
    OutOfRange,
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(&'static str, &'static str),
}

/// An exact amount: whole minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// The largest amount accepted anywhere (in major units): far above any real invoice, far below overflow.
const MAX_MAJOR: i64 = 1_000_000_000_000;

impl Money {
    /// `minor` units of `currency`.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// Parses decimal text exactly (`"29.99"`, `"500"`, `"-1.5"`); no exponent, no float. Digits beyond the
    /// currency's precision are refused unless they are zeros (`"29.990"` is 29.99 USD).
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let text = text.trim();
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((w, f)) => (w, f),
            None => (unsigned, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (unsigned.contains('.') && fraction.is_empty())
        {
            return Err(MoneyError::NotADecimal);
        }
        let digits = usize::from(currency.digits);
        let significant = fraction.trim_end_matches('0');
        if significant.len() > digits {
            return Err(MoneyError::TooManyDigits { currency: currency.code, digits: currency.digits });
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 13 {
            return Err(MoneyError::OutOfRange);
        }
        let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| MoneyError::OutOfRange)? };
        if whole > MAX_MAJOR {
            return Err(MoneyError::OutOfRange);
        }
        let mut frac_minor: i64 = 0;
        for (i, b) in significant.bytes().enumerate() {
            frac_minor += i64::from(b - b'0') * 10_i64.pow((digits - 1 - i) as u32);
        }
        let minor = whole * currency.minor_per_major() + frac_minor;
        Ok(Self { minor: if negative { -minor } else { minor }, currency })
    }

    /// From a database `NUMERIC` value, which must be exact at the currency's precision.
    pub fn from_decimal(value: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        Self::parse(&value.normalize().to_string(), currency)
    }

    /// As a `Decimal` with exactly the currency's digits (for `NUMERIC` columns).
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.minor, u32::from(self.currency.digits))
    }

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// True when below zero.
    pub fn is_negative(self) -> bool {
        self.minor < 0
    }

    /// True when zero.
    pub fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// `self + other`; both must be in the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor.checked_add(other.minor).map(|minor| Money { minor, ..self }).ok_or(MoneyError::OutOfRange)
    }

    /// `self - other`; both must be in the same currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor.checked_sub(other.minor).map(|minor| Money { minor, ..self }).ok_or(MoneyError::OutOfRange)
    }

    /// `self × n` (seats, quantities).
    pub fn checked_mul(self, n: i64) -> Result<Money, MoneyError> {
        self.minor.checked_mul(n).map(|minor| Money { minor, ..self }).ok_or(MoneyError::OutOfRange)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency.code, other.currency.code))
        }
    }

    /// The amount as text with exactly the currency's digits (`"29.99"`, `"500"`, `"1.250"`).
    pub fn amount_string(self) -> String {
        let digits = usize::from(self.currency.digits);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            return format!("{sign}{abs}");
        }
        let per = self.currency.minor_per_major().unsigned_abs();
        format!("{sign}{}.{:0digits$}", abs / per, abs % per)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency.code)
    }
}

/// An amount as the client sent it: a JSON number or a string, kept as its exact text (never an `f64`) until
/// the currency is known and it becomes [`Money`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountText(pub String);

impl AmountText {
    /// The amount in `currency`, as written: no surrounding spaces and no more decimal places than the currency
    /// has, not even zeros (`"29.990"` USD and `"500.00"` JPY are refused), so what a client sends is exactly an
    /// amount the currency can hold.
    pub fn to_money(&self, currency: Currency) -> Result<Money, MoneyError> {
        let text = self.0.as_str();
        if text.is_empty() || text.trim() != text {
            return Err(MoneyError::NotADecimal);
        }
        if let Some((_, fraction)) = text.split_once('.')
            && fraction.len() > usize::from(currency.digits)
        {
            return Err(MoneyError::TooManyDigits { currency: currency.code, digits: currency.digits });
        }
        Money::parse(text, currency)
    }
}

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The raw JSON text of the value: a number's digits exactly as sent.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get().trim();
        if text.starts_with('"') {
            let s: String = serde_json::from_str(text).map_err(de::Error::custom)?;
            return Ok(AmountText(s));
        }
        if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) && !text.contains(['e', 'E']) {
            return Ok(AmountText(text.to_owned()));
        }
        Err(de::Error::custom("expected a decimal amount as a number or a string, e.g. 29.99 or \"29.99\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::from_code("USD").unwrap_or_else(|| panic!("USD"))
    }
    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap_or_else(|| panic!("{code}"))
    }

    #[test]
    fn at_least_39_currencies_with_unique_codes() {
        let all = Currency::all();
        assert!(all.len() >= 39, "{}", all.len());
        let mut codes: Vec<_> = all.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|c| c.code().len() == 3 && c.code().chars().all(|ch| ch.is_ascii_uppercase())));
        assert!(all.iter().all(|c| c.min_charge().minor() > 0));
    }

    #[test]
    fn minor_digits_and_minimums() {
        assert_eq!((cur("USD").digits(), cur("JPY").digits(), cur("KWD").digits()), (2, 0, 3));
        assert_eq!(cur("USD").min_charge().amount_string(), "0.50");
        assert_eq!(cur("EUR").min_charge().amount_string(), "0.50");
        assert_eq!(cur("GBP").min_charge().amount_string(), "0.30");
        assert_eq!(cur("JPY").min_charge().amount_string(), "50");
        assert_eq!(cur("AED").min_charge().amount_string(), "2.00");
        assert!(Currency::from_code("usd").is_none(), "codes are upper case");
        assert_eq!(Currency::from_client_code("usd"), Currency::from_code("USD"), "clients may write any case");
        assert_eq!(Currency::from_client_code("jPy"), Currency::from_code("JPY"));
        assert!(Currency::from_client_code(" usd").is_none());
        assert!(Currency::from_code("XXX").is_none());
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(Money::parse("29.99", usd()).map(Money::minor), Ok(2999));
        assert_eq!(Money::parse("29.9", usd()).map(Money::minor), Ok(2990));
        assert_eq!(Money::parse("29", usd()).map(Money::minor), Ok(2900));
        assert_eq!(Money::parse("0.01", usd()).map(Money::minor), Ok(1));
        assert_eq!(Money::parse("29.990", usd()).map(Money::minor), Ok(2999), "trailing zeros are exact");
        assert_eq!(Money::parse("-1.50", usd()).map(Money::minor), Ok(-150));
        assert_eq!(Money::parse("500", cur("JPY")).map(Money::minor), Ok(500));
        assert_eq!(Money::parse("1.234", cur("KWD")).map(Money::minor), Ok(1234));
        // 0.1 + 0.2 in binary floating point is 0.30000000000000004; here it is exact.
        let sum = Money::parse("0.1", usd()).and_then(|a| a.checked_add(Money::parse("0.2", usd())?));
        assert_eq!(sum.map(Money::amount_string), Ok("0.30".to_owned()));
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for bad in ["", "-", "abc", "1e3", "1.", ".5", "1.2.3", "1,00", "+1", " 1 2", "0x10", "NaN", "inf"] {
            assert!(Money::parse(bad, usd()).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(Money::parse("29.999", usd()), Err(MoneyError::TooManyDigits { .. })));
        assert!(matches!(Money::parse("500.5", cur("JPY")), Err(MoneyError::TooManyDigits { .. })));
        assert!(matches!(Money::parse("99999999999999999999", usd()), Err(MoneyError::OutOfRange)));
    }

    #[test]
    fn renders_with_the_currency_digits() {
        assert_eq!(Money::from_minor(2999, usd()).amount_string(), "29.99");
        assert_eq!(Money::from_minor(5, usd()).amount_string(), "0.05");
        assert_eq!(Money::from_minor(-5, usd()).amount_string(), "-0.05");
        assert_eq!(Money::from_minor(500, cur("JPY")).amount_string(), "500");
        assert_eq!(Money::from_minor(1250, cur("KWD")).amount_string(), "1.250");
        assert_eq!(Money::from_minor(2999, usd()).to_string(), "29.99 USD");
    }

    #[test]
    fn decimals_round_trip() {
        let m = Money::from_minor(2999, usd());
        assert_eq!(m.to_decimal().to_string(), "29.99");
        assert_eq!(Money::from_decimal(m.to_decimal(), usd()), Ok(m));
        assert_eq!(Money::from_decimal(Decimal::new(299_900, 4), usd()), Ok(m), "29.9900 from NUMERIC(_, 4)");
        assert!(Money::from_decimal(Decimal::new(29_999, 3), usd()).is_err());
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies() {
        let a = Money::from_minor(100, usd());
        let b = Money::from_minor(100, cur("EUR"));
        assert!(matches!(a.checked_add(b), Err(MoneyError::CurrencyMismatch("USD", "EUR"))));
        assert_eq!(a.checked_mul(3).map(Money::minor), Ok(300));
    }

    #[test]
    fn amounts_deserialize_from_numbers_and_strings_exactly() {
        #[derive(Deserialize)]
        struct Body {
            amount: AmountText,
        }
        let parse = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.amount.0);
        assert_eq!(parse(r#"{"amount": 29.99}"#).ok().as_deref(), Some("29.99"));
        assert_eq!(parse(r#"{"amount": "29.99"}"#).ok().as_deref(), Some("29.99"));
        // A number an f64 cannot hold exactly stays exact.
        assert_eq!(parse(r#"{"amount": 0.30000000000000001}"#).ok().as_deref(), Some("0.30000000000000001"));
        assert!(parse(r#"{"amount": 1e2}"#).is_err());
        assert!(parse(r#"{"amount": true}"#).is_err());
        assert!(parse(r#"{"amount": null}"#).is_err());
    }

    #[test]
    fn currency_deserializes_only_known_codes() {
        assert_eq!(serde_json::from_str::<Currency>(r#""JPY""#).ok(), Currency::from_code("JPY"));
        assert!(serde_json::from_str::<Currency>(r#""jpy""#).is_err());
        assert!(serde_json::from_str::<Currency>(r#""ZZZ""#).is_err());
    }

    #[test]
    fn client_amounts_are_refused_with_extra_digits_or_spaces() {
        let text = |t: &str| AmountText(t.to_owned());
        assert_eq!(text("29.99").to_money(usd()).map(Money::minor), Ok(2999));
        assert_eq!(text("29.9").to_money(usd()).map(Money::minor), Ok(2990));
        assert_eq!(text("500").to_money(cur("JPY")).map(Money::minor), Ok(500));
        assert_eq!(text("1.234").to_money(cur("KWD")).map(Money::minor), Ok(1234));
        assert!(matches!(text("29.990").to_money(usd()), Err(MoneyError::TooManyDigits { .. })));
        assert!(matches!(text("500.00").to_money(cur("JPY")), Err(MoneyError::TooManyDigits { .. })));
        assert!(matches!(text("500.").to_money(cur("JPY")), Err(MoneyError::NotADecimal)));
        for spaced in [" 29.99", "29.99 ", "\t29.99", "29.99\n", "", " "] {
            assert_eq!(text(spaced).to_money(usd()), Err(MoneyError::NotADecimal), "{spaced:?}");
        }
        // Stored NUMERIC values keep their trailing zeros and stay readable.
        assert_eq!(Money::from_decimal(Decimal::new(299_900, 4), usd()).map(Money::minor), Ok(2999));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

        /// Fuzzing of the money parser: any text either parses to an amount that renders back to a value equal
        /// to it, or is refused; it never panics. The corpus of hand-picked inputs is `fuzz/amounts.txt`.
        #[test]
        fn arbitrary_amount_text_parses_exactly_or_is_refused(text in "[ 0-9.eE+-]{0,24}|.{0,24}", idx in 0usize..47) {
            let currency = Currency::all()[idx % Currency::all().len()];
            if let Ok(money) = AmountText(text.clone()).to_money(currency) {
                let value: Decimal = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
                prop_assert_eq!(money.to_decimal(), value);
                prop_assert_eq!(AmountText(money.amount_string()).to_money(currency), Ok(money));
            }
        }
    }

    #[test]
    fn the_amount_corpus_parses_exactly_or_is_refused() {
        for line in include_str!("../fuzz/amounts.txt").lines().filter(|l| !l.starts_with('#')) {
            let (code, text) = line.split_once('\t').unwrap_or(("USD", line));
            let currency = cur(code);
            if let Ok(money) = AmountText(text.to_owned()).to_money(currency) {
                assert_eq!(text.parse::<Decimal>().ok(), Some(money.to_decimal()), "{line:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn render_then_parse_is_the_identity(minor in -1_000_000_000_000_i64..1_000_000_000_000, idx in 0usize..47) {
            let currency = Currency::all()[idx % Currency::all().len()];
            let money = Money::from_minor(minor, currency);
            prop_assert_eq!(Money::parse(&money.amount_string(), currency), Ok(money));
            prop_assert_eq!(Money::from_decimal(money.to_decimal(), currency), Ok(money));
        }

        #[test]
        fn adding_parsed_amounts_is_exact(a in 0_i64..10_000_000, b in 0_i64..10_000_000) {
            let usd = Currency::from_code("USD").unwrap_or_else(|| panic!("USD"));
            let x = Money::parse(&Money::from_minor(a, usd).amount_string(), usd);
            let y = Money::parse(&Money::from_minor(b, usd).amount_string(), usd);
            let sum = x.and_then(|x| y.and_then(|y| x.checked_add(y)));
            prop_assert_eq!(sum.map(Money::minor), Ok(a + b));
        }
    }

    /// Whether the amount pattern of `currency` lets `text` in, and whether the service would take it as a price.
    fn judged(currency: Currency, text: &str) -> (bool, bool) {
        let pattern = regex::Regex::new(&currency.amount_pattern(true)).unwrap_or_else(|e| panic!("{e}"));
        let taken = AmountText(text.to_owned())
            .to_money(currency)
            .is_ok_and(|m| m.is_zero() || (!m.is_negative() && m.minor() >= currency.min_charge().minor()));
        (pattern.is_match(text), taken)
    }

    #[test]
    fn amount_patterns_mark_the_edges() {
        for (code, text, matches) in [
            ("USD", "0", true),
            ("USD", "0.00", true),
            ("USD", "0.49", false),
            ("USD", "1", true),
            ("USD", "29.99", true),
            ("USD", "29.999", false),
            ("USD", "-5", false),
            ("USD", "01", false),
            ("JPY", "50", true),
            ("JPY", "49", false),
            ("JPY", "50.0", false),
            ("KWD", "1.234", true),
            ("KWD", "1.2345", false),
            ("HUF", "200", true),
            ("HUF", "999999999999", true),
            ("HUF", "1000000000000", false),
        ] {
            assert_eq!(judged(cur(code), text).0, matches, "{code} {text}");
        }
        let charge = regex::Regex::new(&cur("USD").amount_pattern(false)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!charge.is_match("0"), "a charge is never zero");
        assert!(charge.is_match("1.00"));
    }

    proptest! {
        /// Nothing the pattern lets in is refused, in any currency.
        #[test]
        fn what_an_amount_pattern_lets_in_is_taken(
            index in 0..CURRENCIES.len(), whole in 0u64..2_000_000_000_000, fraction in 0u32..10_000, width in 0usize..5,
        ) {
            let currency = CURRENCIES[index];
            let text = if width == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{:0width$}", fraction % 10u32.pow(width as u32))
            };
            let (matches, taken) = judged(currency, &text);
            prop_assert!(!matches || taken, "{} {text} matches but is refused", currency.code());
        }
    }
}
