//! Facts read off a card number alone: its Luhn checksum and its brand. Shared by the payment service (which checks
//! what a customer typed) and the gateway simulator (which checks what it is sent, as a real gateway does).

/// The Luhn checksum of a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c.wrapping_sub(b'0'));
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// The brand, from the number's prefix (`unknown` when none matches).
pub fn brand(number: &str) -> &'static str {
    let prefix2: u32 = number.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let prefix4: u32 = number.get(..4).and_then(|p| p.parse().ok()).unwrap_or(0);
    if number.starts_with('4') {
        "visa"
    } else if (51..=55).contains(&prefix2) || (2221..=2720).contains(&prefix4) {
        "mastercard"
    } else if prefix2 == 34 || prefix2 == 37 {
        "amex"
    } else if number.starts_with("6011") || number.starts_with("65") {
        "discover"
    } else {
        "unknown"
    }
}
