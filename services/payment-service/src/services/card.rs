//! Card input validation. The number and CVV are checked here and handed to the gateway, nothing else.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};

use crate::clients::gateway::CardDetails;

pub use billing_domain::card::luhn_valid;

/// Validates the card fields at `now`; every bad field is named.
pub fn validate(
    number: &str,
    expiry: &str,
    cvv: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<CardDetails, BTreeMap<String, String>> {
    let mut fields = BTreeMap::new();
    let digits: String = number.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        fields.insert("card_number".to_owned(), "12 to 19 digits".to_owned());
    } else if !luhn_valid(&digits) {
        fields.insert("card_number".to_owned(), "not a valid card number (checksum)".to_owned());
    }
    let expiry_parts = expiry.trim().split_once('/').and_then(|(m, y)| Some((m.trim().parse::<u32>().ok()?, y.trim())));
    let (exp_month, exp_year) = match expiry_parts {
        Some((m, y)) if (1..=12).contains(&m) && y.len() == 2 && y.bytes().all(|b| b.is_ascii_digit()) => {
            let year = 2000 + y.parse::<u32>().unwrap_or(0);
            let (cur_year, cur_month) = (u32::try_from(now.year()).unwrap_or(0), now.month());
            if year < cur_year || (year == cur_year && m < cur_month) {
                fields.insert("card_expiry".to_owned(), "the card has expired".to_owned());
            }
            (m, year)
        }
        _ => {
            fields.insert("card_expiry".to_owned(), "MM/YY".to_owned());
            (0, 0)
        }
    };
    let amex = digits.starts_with("34") || digits.starts_with("37");
    let cvv_len = if amex { 4 } else { 3 };
    if cvv.len() != cvv_len || !cvv.bytes().all(|b| b.is_ascii_digit()) {
        fields.insert("card_cvv".to_owned(), format!("{cvv_len} digits"));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        fields.insert("cardholder_name".to_owned(), "1 to 100 characters".to_owned());
    }
    if !fields.is_empty() {
        return Err(fields);
    }
    Ok(CardDetails { number: digits, exp_month, exp_year, cvv: cvv.to_owned(), cardholder_name: name.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).single().unwrap_or_else(|| panic!("date"))
    }

    #[test]
    fn luhn() {
        for ok in ["4242424242424242", "4000000000000002", "5555555555554444", "378282246310005"] {
            assert!(luhn_valid(ok), "{ok}");
        }
        assert!(!luhn_valid("4242424242424241"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = validate("4242 4242 4242 4241", "13/20", "12", " ", now()).err().unwrap_or_default();
        assert_eq!(err.keys().collect::<Vec<_>>(), ["card_cvv", "card_expiry", "card_number", "cardholder_name"]);
        let err = validate("4242424242424242", "10/26", "123", "Ada", now()).err().unwrap_or_default();
        assert_eq!(err.get("card_expiry").map(String::as_str), Some("the card has expired"));
        let err = validate("378282246310005", "12/30", "123", "Ada", now()).err().unwrap_or_default();
        assert!(err.contains_key("card_cvv"), "amex needs 4 digits");
    }

    #[test]
    fn a_good_card_is_normalised() {
        let card = validate("4242-4242 4242 4242", "11/26", "123", " Ada ", now()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (card.number.as_str(), card.exp_month, card.exp_year, card.cardholder_name.as_str()),
            ("4242424242424242", 11, 2026, "Ada")
        );
    }
}
