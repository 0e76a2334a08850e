//! JSON snapshots: a value, with what differs from run to run redacted (ids, times, tokens, gateway references,
//! the month in document numbers, random emails), is compared with its file `<dir>/<name>.json`. With
//! `UPDATE_SNAPSHOTS=1` the files are written instead: review the diff before committing it.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// Keys whose values are secrets that change every run.
const TOKEN_KEYS: [&str; 2] = ["access_token", "refresh_token"];

#[expect(clippy::expect_used, reason = "the patterns are constants")]
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", "[time]"),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]"),
        (r"[0-9a-f]{32,}", "[hex]"),
        (r"\b(pi|re|pm|ch|cus|evt)_[A-Za-z0-9]{8,}\b", "${1}_[ref]"),
        (r"\b(INV|CN)-\d{6}-", "${1}-[yyyymm]-"),
    ]
    .into_iter()
    .map(|(pattern, with)| (Regex::new(pattern).expect("a valid pattern"), with))
    .collect()
});

/// `value` with what changes between runs replaced by a placeholder naming what it was.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| {
                    let redacted = match v {
                        Value::String(_) if TOKEN_KEYS.contains(&key.as_str()) => Value::from("[token]"),
                        other => redact(other),
                    };
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) => {
            let mut text = text.clone();
            for (pattern, with) in PATTERNS.iter() {
                text = pattern.replace_all(&text, *with).into_owned();
            }
            Value::String(text)
        }
        other => other.clone(),
    }
}

/// Asserts that `value`, redacted, is the snapshot `name` in `dir` (or writes it, with `UPDATE_SNAPSHOTS=1`).
pub fn assert_snapshot(dir: &Path, name: &str, value: &Value) {
    let path = dir.join(format!("{name}.json"));
    let actual = format!("{:#}\n", redact(value));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(dir).expect("creating the snapshot directory");
        std::fs::write(&path, &actual).expect("writing a snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no snapshot {}: run the test with UPDATE_SNAPSHOTS=1 and review the file\n{actual}", path.display())
    });
    assert!(
        expected == actual,
        "{name} differs from its snapshot {} (UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::redact;

    #[test]
    fn ids_times_tokens_references_and_months_are_redacted_and_nothing_else() {
        let value = json!({
            "id": "0194f2a1-7c3e-7b11-9a55-0123456789ab", "event_id": "evt_0194f2a1-7c3e-7b11-9a55-0123456789ab",
            "access_token": "eyJ.x.y", "created_at": "2026-11-28T07:50:01.123456Z",
            "gateway_reference": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "number": "INV-202611-0007",
            "email": "c0123456789abcdef0123456789abcdef@example.com",
            "amount": "29.99", "status": "succeeded", "quantity": 3, "lines": [{"period_end": "2026-12-28T07:50:01Z"}],
        });
        assert_eq!(
            redact(&value),
            json!({
                "id": "[uuid]", "event_id": "evt_[uuid]", "access_token": "[token]", "created_at": "[time]",
                "gateway_reference": "pi_[ref]", "number": "INV-[yyyymm]-0007", "email": "[hex]@example.com",
                "amount": "29.99", "status": "succeeded", "quantity": 3, "lines": [{"period_end": "[time]"}],
            })
        );
    }
}
