//! Plan features: `{"api_calls": {"limit": 1000}, "storage": {"limit": "1GB"}, "sso": true}`.
//! An integer `limit` is metered (hard-limited), `"limit": null` is unlimited, a `billing` price is counted without
//! a cap and billed in arrears (see [`crate::pricing`]), anything else is informational.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::pricing::UsagePrice;

/// One feature of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    /// Counted per billing period against `limit`.
    Metered { limit: u64 },
    /// Counted, never limited.
    Unlimited,
    /// Counted without a cap and billed in arrears at this price.
    Billed(UsagePrice),
    /// Shown to customers, not counted (`"sso": true`, `{"limit": "1GB"}`).
    Informational(Value),
}

impl Feature {
    /// True when usage of this feature is counted.
    pub fn is_counted(&self) -> bool {
        matches!(self, Self::Metered { .. } | Self::Unlimited | Self::Billed(_))
    }

    /// The limit, `None` when unlimited or informational.
    pub fn limit(&self) -> Option<u64> {
        match self {
            Self::Metered { limit } => Some(*limit),
            _ => None,
        }
    }
}

/// The features of a plan, parsed and validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanFeatures(BTreeMap<String, Feature>);

/// The longest feature name accepted.
const MAX_NAME: usize = 64;

impl PlanFeatures {
    /// Parses a plan's features object; the error names the field and the problem.
    pub fn parse(value: &Value) -> Result<Self, (String, String)> {
        let Value::Object(map) = value else {
            return Err(("features".to_owned(), "must be an object of feature name to definition".to_owned()));
        };
        let mut features = BTreeMap::new();
        for (name, definition) in map {
            if !is_valid_name(name) {
                return Err((
                    format!("features.{name}"),
                    format!("a feature name is 1-{MAX_NAME} lower-case letters, digits or underscores"),
                ));
            }
            let feature = match definition {
                Value::Object(fields) if fields.contains_key("billing") => {
                    if fields.get("limit").is_some_and(|l| !l.is_null()) {
                        return Err((
                            format!("features.{name}.limit"),
                            "a feature is either hard-limited or billed, not both".to_owned(),
                        ));
                    }
                    let price = UsagePrice::parse(definition)
                        .map_err(|(field, message)| (format!("features.{name}.{field}"), message))?;
                    Feature::Billed(price)
                }
                Value::Object(fields) => match fields.get("limit") {
                    Some(Value::Null) => Feature::Unlimited,
                    // `5.0` is a whole number to JSON Schema, so to a client generating from the document.
                    Some(Value::Number(n)) => match n.as_u64().or_else(|| {
                        n.as_f64()
                            .filter(|x| x.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(x))
                            .map(|x| x as u64)
                    }) {
                        Some(limit) => Feature::Metered { limit },
                        None => {
                            return Err((
                                format!("features.{name}.limit"),
                                "a metered limit is a whole number ≥ 0 (or null for unlimited)".to_owned(),
                            ));
                        }
                    },
                    _ => Feature::Informational(definition.clone()),
                },
                other => Feature::Informational(other.clone()),
            };
            features.insert(name.clone(), feature);
        }
        Ok(Self(features))
    }

    /// The feature called `name`.
    pub fn get(&self, name: &str) -> Option<&Feature> {
        self.0.get(name)
    }

    /// Every feature, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Feature)> {
        self.0.iter().map(|(n, f)| (n.as_str(), f))
    }

    /// Billed features with their prices, by name.
    pub fn billed(&self) -> impl Iterator<Item = (&str, &UsagePrice)> {
        self.0.iter().filter_map(|(n, f)| match f {
            Feature::Billed(price) => Some((n.as_str(), price)),
            _ => None,
        })
    }

    /// Counted features (metered, unlimited or billed), by name.
    pub fn counted(&self) -> impl Iterator<Item = (&str, &Feature)> {
        self.0.iter().filter(|(_, f)| f.is_counted()).map(|(n, f)| (n.as_str(), f))
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: &Value) -> Result<PlanFeatures, (String, String)> {
        PlanFeatures::parse(value)
    }

    #[test]
    fn a_billed_feature_is_counted_without_a_limit_and_cannot_also_be_limited() {
        let f = parse(&json!({"api_calls": {"billing": "per_unit", "unit_amount": "0.001", "included": 1000}}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(f.get("api_calls").is_some_and(|c| c.is_counted() && c.limit().is_none()));
        assert_eq!(f.billed().map(|(n, p)| (n, p.included)).collect::<Vec<_>>(), [("api_calls", 1000)]);
        let both = parse(&json!({"api_calls": {"billing": "per_unit", "unit_amount": "1", "limit": 5}}));
        assert_eq!(both.err().map(|e| e.0), Some("features.api_calls.limit".into()));
        let bad = parse(&json!({"api_calls": {"billing": "graduated", "tiers": []}}));
        assert_eq!(bad.err().map(|e| e.0), Some("features.api_calls.tiers".into()));
    }

    #[test]
    fn classifies_the_seed_003_features() {
        let f = parse(&json!({
            "api_calls": {"limit": 1000}, "storage": {"limit": "1GB"}, "sso": true, "seats": {"limit": null}
        }))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.get("api_calls"), Some(&Feature::Metered { limit: 1000 }));
        assert_eq!(f.get("seats"), Some(&Feature::Unlimited));
        assert!(matches!(f.get("storage"), Some(Feature::Informational(_))));
        assert!(matches!(f.get("sso"), Some(Feature::Informational(_))));
        let counted: Vec<_> = f.counted().map(|(n, _)| n).collect();
        assert_eq!(counted, vec!["api_calls", "seats"]);
        assert_eq!(f.get("api_calls").and_then(Feature::limit), Some(1000));
    }

    #[test]
    fn refuses_bad_limits_and_names() {
        assert_eq!(parse(&json!({"x": {"limit": -1}})).err().map(|e| e.0), Some("features.x.limit".into()));
        assert!(parse(&json!({"x": {"limit": 1.5}})).is_err());
        assert!(parse(&json!({"Bad Name": true})).is_err());
        assert!(parse(&json!([1, 2])).is_err());
        assert!(parse(&json!({})).is_ok_and(|f| f.counted().count() == 0));
    }
}
