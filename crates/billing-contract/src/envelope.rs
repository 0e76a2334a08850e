//! Reading the response envelope every route answers with.

use serde::Deserialize;
use serde_json::Value;

/// Either envelope: `{success, data, …}` or `{success, error, code, details, …}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope<T> {
    /// Present on success.
    pub data: Option<T>,
    /// The message of an error.
    pub error: Option<String>,
    /// The machine-readable code of an error (`invoice_not_payable` …).
    pub code: Option<String>,
    /// What an error adds (`fields`, a decline's `transaction_id` …).
    #[serde(default)]
    pub details: Value,
}

impl<T> Envelope<T> {
    /// `"<code>: <message>"` of an error, for logs and job failures.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.code.as_deref().unwrap_or(""), self.error.as_deref().unwrap_or(""))
    }

    /// Whether an error's `details.fields` names `field`.
    pub fn names_field(&self, field: &str) -> bool {
        self.details.get("fields").and_then(|f| f.get(field)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_envelopes_read() {
        let ok: Envelope<Value> =
            serde_json::from_str(r#"{"success":true,"data":{"a":1},"message":"m","timestamp":"t"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.data, Some(serde_json::json!({"a": 1})));
        let err: Envelope<Value> = serde_json::from_str(
            r#"{"success":false,"error":"bad","code":"validation_failed","details":{"fields":{"x":"y"}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(err.data.is_none() && err.names_field("x") && !err.names_field("z"));
        assert_eq!(err.describe(), "validation_failed: bad");
    }
}
