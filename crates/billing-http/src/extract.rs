//! Strict request extraction: JSON bodies with precise per-field errors, and the error handlers for
//! actix's own path, query and payload extractors.

use std::collections::BTreeMap;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::json;

use crate::{ApiError, BODY_LIMIT_BYTES};

/// A JSON body: `Content-Type: application/json` (415), at most 64 KiB (413), valid JSON (400),
/// the right shape (422 naming each bad or unknown field). Write DTOs use `deny_unknown_fields`,
/// so mass assignment is impossible.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The inner value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json(req);
        let declared_len =
            req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(unsupported_media_type());
            }
            if declared_len.is_some_and(|len| len > BODY_LIMIT_BYTES) {
                return Err(ApiError::payload_too_large());
            }
            let mut body = web::BytesMut::with_capacity(declared_len.unwrap_or(1024).min(BODY_LIMIT_BYTES));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::malformed_json(format!("could not read the body: {e}")))?;
                if body.len() + chunk.len() > BODY_LIMIT_BYTES {
                    return Err(ApiError::payload_too_large());
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(Json)
        })
    }
}

fn is_json(req: &HttpRequest) -> bool {
    matches!(req.mime_type(), Ok(Some(mime))
        if mime.type_() == "application" && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json")))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be JSON with Content-Type: application/json",
    )
}

/// As [`parse_json`] for a body a route took as raw bytes (to sign or fingerprint them): the request must say
/// `Content-Type: application/json` (415 otherwise), as the [`Json`] extractor requires.
pub fn parse_json_request<T: DeserializeOwned>(req: &HttpRequest, bytes: &[u8]) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(unsupported_media_type());
    }
    parse_json(bytes)
}

/// Parses `bytes` as `T`, mapping syntax errors to 400 and shape errors to 422 with the field path. Every body we
/// take is a JSON object: serde would also fill a struct from an array of its fields in order (`[2, 1]` as
/// `{"plan_id": 2, "quantity": 1}`), which names no field and passes `deny_unknown_fields`, so anything but an
/// object is refused here.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        // Syntax first: a typed parse would report an unknown first key (422) before a syntax error later on.
        Some(b'{') => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
                .map_err(|e| ApiError::malformed_json(strip_position(&e)))?;
            if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) && has_nul(bytes) {
                // PostgreSQL text cannot hold NUL: refused here, never a database error (500) later.
                return Err(ApiError::invalid_field("body", "text must not contain NUL (\\u0000) characters"));
            }
        }
        None => return Err(ApiError::malformed_json("the body is empty")),
        Some(_) => {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::invalid_field("body", "must be a JSON object"),
                Err(e) => ApiError::malformed_json(strip_position(&e)),
            });
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            Category::Data => {
                let (field, message) = describe_data_error(&path, &inner);
                let mut fields = BTreeMap::from([(field.clone(), message.clone())]);
                if message == "is required" && !field.contains('.') {
                    fields.extend(other_missing_fields::<T>(bytes, &field).into_iter().map(|f| (f, message.clone())));
                }
                ApiError::validation(fields)
            }
            Category::Syntax | Category::Eof | Category::Io => ApiError::malformed_json(strip_position(&inner)),
        }
    })?;
    de.end().map_err(|e| ApiError::malformed_json(strip_position(&e)))?;
    Ok(value)
}

/// True when a string (or key) of the JSON document `bytes` contains the NUL character.
fn has_nul(bytes: &[u8]) -> bool {
    fn walk(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(walk),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| walk(&v))
}

/// serde stops at the first missing field; the others are found by filling each missing one in turn with a value
/// of some type it accepts and parsing again (only on this error path, at most a few dozen small parses).
fn other_missing_fields<T: DeserializeOwned>(bytes: &[u8], first: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    let fillers = [json!(""), json!(1), json!(true), json!({}), json!([]), json!("1.00")];
    let mut missing = Vec::new();
    let mut current = first.to_owned();
    for _ in 0..32 {
        let mut next = None;
        for filler in &fillers {
            object.insert(current.clone(), filler.clone());
            match serde_path_to_error::deserialize::<_, T>(serde_json::Value::Object(object.clone())) {
                Ok(_) => return missing,
                Err(err) if err.path().to_string().starts_with(current.as_str()) => continue,
                Err(err) => {
                    let message = err.inner().to_string();
                    next = message
                        .strip_prefix("missing field `")
                        .and_then(|rest| rest.find('`').map(|end| rest[..end].to_owned()))
                        .filter(|_| matches!(err.path().to_string().as_str(), "." | "?" | ""));
                    break;
                }
            }
        }
        match next {
            Some(field) if !missing.contains(&field) && field != first => {
                missing.push(field.clone());
                current = field;
            }
            _ => break,
        }
    }
    missing
}

/// serde names unknown and missing fields in the message, with the path of the object around them.
fn describe_data_error(path: &str, err: &serde_json::Error) -> (String, String) {
    let message = strip_position(err);
    let is_root = matches!(path, "." | "?" | "");
    // The path of an unknown field already ends with it; a missing field's path is the object around it.
    if message.starts_with("unknown field `") {
        return (if is_root { "body".to_owned() } else { path.to_owned() }, "unknown field".to_owned());
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(end) = rest.find('`')
    {
        let name = &rest[..end];
        return (if is_root { name.to_owned() } else { format!("{path}.{name}") }, "is required".to_owned());
    }
    (if is_root { "body".to_owned() } else { path.to_owned() }, without_value(&message))
}

/// serde quotes the offending value in type errors (``invalid type: integer `4242424242424242`, expected a
/// string``); a card number sent in the wrong field would come back in the answer and land in logs. Only the
/// kind of value is kept.
fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.rfind(", expected ")
        {
            let found = &rest[..at];
            let kind = ["boolean", "integer", "floating point", "character", "string", "byte array"]
                .into_iter()
                .find(|k| found.starts_with(k))
                .unwrap_or(found);
            return format!("{prefix}{kind}{}", &rest[at..]);
        }
    }
    if message.starts_with("unknown variant ")
        && let Some(at) = message.find(", expected ")
    {
        return format!("unknown variant{}", &message[at..]);
    }
    message.to_owned()
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_owned(),
        None => text,
    }
}

/// A path segment that does not parse (e.g. a malformed id) names nothing that can exist: 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|_: PathError, _| ApiError::not_found("not_found", "no such resource").into())
}

/// A bad query string is a 422 naming the problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err: QueryPayloadError, _| ApiError::invalid_field("query", err.to_string()).into())
}

/// actix's own `web::Json`, should anything use it, maps errors the same way as [`Json`].
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(BODY_LIMIT_BYTES).error_handler(|err: JsonPayloadError, _| {
        match err {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                ApiError::payload_too_large()
            }
            JsonPayloadError::ContentType => ApiError::for_status(actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE),
            JsonPayloadError::Deserialize(e) if e.classify() == Category::Data => {
                ApiError::invalid_field("body", strip_position(&e))
            }
            other => ApiError::malformed_json(other),
        }
        .into()
    })
}

/// Raw bodies (`web::Bytes`, used for signed webhooks) share the 64 KiB limit.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(BODY_LIMIT_BYTES)
}

/// Integer fields that also take a JSON number with a zero fraction (`785.0`): JSON Schema counts it as an
/// integer, so a client generating requests from the document may send it. `#[serde(with = "whole")]`.
pub mod whole {
    use serde::de::{Deserialize, Deserializer, Error};

    /// A whole number in `T`'s range.
    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<i64>>(deserializer: D) -> Result<T, D::Error> {
        let number =
            serde_json::Number::deserialize(deserializer).map_err(|_| D::Error::custom("expected an integer"))?;
        let whole = number.as_i64().or_else(|| {
            number.as_f64().filter(|x| x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_991.0).map(|x| x as i64)
        });
        whole.and_then(|n| T::try_from(n).ok()).ok_or_else(|| D::Error::custom("expected an integer in range"))
    }

    /// The same for an optional field (with `#[serde(default, with = "whole::option")]`).
    pub mod option {
        use serde::de::{Deserialize, Deserializer};

        /// `null` or a whole number in `T`'s range.
        pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<i64>>(deserializer: D) -> Result<Option<T>, D::Error> {
            match Option::<serde_json::Number>::deserialize(deserializer)? {
                None => Ok(None),
                Some(n) => super::deserialize(n).map(Some).map_err(serde::de::Error::custom),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        email: String,
        count: u32,
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Inner {
        flag: bool,
    }

    fn fields(err: &ApiError) -> serde_json::Value {
        err.details()["fields"].clone()
    }

    #[test]
    fn syntax_errors_are_400() {
        for body in [&b"{"[..], b"not json", b"", b"{\"email\": \"a\", \"count\": 1} trailing"] {
            let err = parse_json::<Body>(body).err().unwrap_or_else(|| panic!("accepted {body:?}"));
            assert_eq!(err.status().as_u16(), 400, "{body:?}");
            assert_eq!(err.code(), "malformed_json");
        }
    }

    #[test]
    fn unknown_fields_are_422_naming_the_field() {
        let err = parse_json::<Body>(br#"{"email":"a","count":1,"status":"active"}"#).err();
        let err = err.unwrap_or_else(|| panic!("unknown field accepted"));
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.code(), "validation_failed");
        assert_eq!(fields(&err), serde_json::json!({"status": "unknown field"}));
    }

    #[test]
    fn missing_and_mistyped_fields_name_their_path() {
        let err = parse_json::<Body>(br#"{"count":1}"#).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(fields(&err), serde_json::json!({"email": "is required"}));
        let err = parse_json::<Body>(br#"{"email":"a","count":-1}"#).err().unwrap_or_else(|| panic!("accepted"));
        assert!(fields(&err)["count"].as_str().is_some_and(|m| m.contains("invalid value")), "{err:?}");
        let err = parse_json::<Body>(br#"{"email":"a","count":1,"nested":{"flag":"yes"}}"#).err();
        let err = err.unwrap_or_else(|| panic!("accepted"));
        assert!(fields(&err)["nested.flag"].is_string(), "{err:?}");
        let err = parse_json::<Body>(br#"{"email":"a","count":1,"nested":{"x":1}}"#).err();
        assert_eq!(err.map(|e| fields(&e)), Some(serde_json::json!({"nested.x": "unknown field"})));
    }

    #[test]
    fn every_missing_field_is_listed_and_syntax_comes_before_shape() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "fields exist to be deserialized")]
        struct Three {
            email: String,
            count: u32,
            note: Option<String>,
            flag: bool,
        }
        let err = parse_json::<Three>(b"{}").err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(
            fields(&err),
            serde_json::json!({"email": "is required", "count": "is required", "flag": "is required"})
        );
        let err = parse_json::<Three>(br#"{"count": 1}"#).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(fields(&err), serde_json::json!({"email": "is required", "flag": "is required"}));
        // Whatever the first key, malformed JSON is a 400.
        for body in [&br#"{"bogus": 1, "email": "#[..], br#"{"email": "a", "count": 1,"#, br#"{"count": x}"#] {
            let err = parse_json::<Three>(body).err().unwrap_or_else(|| panic!("accepted {body:?}"));
            assert_eq!(err.status().as_u16(), 400, "{body:?}: {err:?}");
        }
    }

    #[test]
    fn nul_characters_are_refused_before_they_reach_the_database() {
        let err =
            parse_json::<Body>(br#"{"email": "a\u0000b", "count": 1}"#).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.status().as_u16(), 422);
        assert!(fields(&err)["body"].as_str().is_some_and(|m| m.contains("NUL")), "{err:?}");
        // An escaped backslash followed by "u0000" is just text.
        assert!(parse_json::<Body>(br#"{"email": "a\\u0000b", "count": 1}"#).is_ok());
    }

    #[test]
    fn a_non_object_body_is_422_on_the_body() {
        let err = parse_json::<Body>(br#""just a string""#).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.status().as_u16(), 422, "{err:?}");
        assert!(fields(&err)["body"].is_string(), "{err:?}");
    }

    #[test]
    fn the_sequence_form_of_a_struct_is_refused() {
        // serde alone accepts this as {"email": "a@b.c", "count": 1}.
        for body in [&br#"["a@b.c", 1]"#[..], br#"  ["a@b.c", 1, null]"#, b"[]", b"1", b"null", b"true"] {
            let err = parse_json::<Body>(body).err().unwrap_or_else(|| panic!("accepted {body:?}"));
            assert_eq!(err.status().as_u16(), 422, "{body:?}");
            assert_eq!(fields(&err), serde_json::json!({"body": "must be a JSON object"}), "{body:?}");
        }
        assert_eq!(parse_json::<Body>(b"[1,").err().map(|e| e.status().as_u16()), Some(400), "still a syntax error");
    }

    #[test]
    fn type_errors_never_echo_the_value_sent() {
        let pan = "4242424242424242";
        for body in [
            format!(r#"{{"email": {pan}, "count": 1}}"#),
            format!(r#"{{"email": "a", "count": "{pan}"}}"#),
            format!(r#"{{"email": "a", "count": {pan}}}"#),
            format!(r#"{{"email": "a", "count": {pan}.5}}"#),
            format!(r#"{{"email": "a", "count": 1, "nested": {{"flag": "{pan}"}}}}"#),
        ] {
            let err = parse_json::<Body>(body.as_bytes()).err().unwrap_or_else(|| panic!("accepted {body}"));
            let answer = serde_json::to_string(&err.envelope()).unwrap_or_default();
            assert!(!answer.contains(pan), "{answer}");
            assert!(answer.contains("expected"), "the message still says what was expected: {answer}");
        }
    }

    /// Fuzzing of the strict JSON extractor (proptest): any bytes, and JSON of any shape, either parse into an
    /// object-shaped body or are refused with a 400 or 422 that never quotes a long digit run from the input.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const PAN: &str = "4242424242424242";

        fn check(bytes: &[u8]) {
            match parse_json::<Body>(bytes) {
                Ok(_) => assert_eq!(bytes.iter().find(|b| !b.is_ascii_whitespace()), Some(&b'{'), "{bytes:?}"),
                Err(err) => {
                    assert!(matches!(err.status().as_u16(), 400 | 422), "{bytes:?}: {err:?}");
                    let answer = serde_json::to_string(&err.envelope()).unwrap_or_default();
                    assert!(!answer.contains(PAN), "{answer}");
                }
            }
        }

        #[test]
        fn the_corpus_is_refused_or_accepted_as_objects_without_echo() {
            for line in include_str!("../fuzz/bodies.txt").lines().filter(|l| !l.starts_with('#')) {
                check(line.as_bytes());
            }
        }

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::from(4_242_424_242_424_242_i64)),
                Just(serde_json::Value::from(PAN)),
                "[a-z0-9 ]{0,8}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                    proptest::collection::btree_map(
                        prop_oneof![
                            Just("email".to_owned()),
                            Just("count".to_owned()),
                            Just("nested".to_owned()),
                            Just("flag".to_owned()),
                            "[a-z]{1,6}"
                        ],
                        inner,
                        0..4
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                check(&bytes);
            }

            #[test]
            fn arbitrary_json_is_parsed_or_refused_without_echo(value in json_value()) {
                check(value.to_string().as_bytes());
            }
        }
    }
}
