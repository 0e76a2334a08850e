//! The OpenAPI document (routes common to both services merged into each service's own) and Swagger UI.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ErrorEnvelope;
use crate::health::{BasicHealth, CheckOutcome, DetailedHealth};

/// Adds the `bearer` (JWT) security scheme routes refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Routes and schemas every service has.
#[derive(OpenApi)]
#[openapi(
    paths(crate::health::basic, crate::health::detailed, crate::metrics::render, crate::queues::list, crate::queues::requeue, crate::queues::drop_failed),
    components(schemas(ErrorEnvelope, BasicHealth, DetailedHealth, CheckOutcome, crate::queues::QueueReport)),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness and dependency checks"),
        (name = "operations", description = "Metrics and operations"),
    )
)]
pub struct CommonApi;

/// A service's document with the common routes merged in, titled and described.
pub fn document(mut service: Document, title: &str, description: &str) -> Document {
    service.merge(CommonApi::openapi());
    service.info.title = title.to_owned();
    service.info.version = env!("CARGO_PKG_VERSION").to_owned();
    service.info.description = Some(description.to_owned());
    unique_operation_ids(&mut service);
    document_common_errors(&mut service);
    envelope_success_bodies(&mut service);
    parameters_are_never_null(&mut service);
    request_text_has_no_nul(&mut service);
    service
}

/// The characters a name made only of is blank (`str::trim` removes them: Unicode White_Space), with U+FEFF,
/// which JavaScript counts as a space. `\S` means different things to different regex engines (U+0085 is a space
/// to Rust, not to ECMAScript), so a "not blank" text states this class; in a derive attribute, write `\S`.
pub const NOT_BLANK: &str =
    "[^\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000\\uFEFF]";

/// A header or query parameter is absent or a string, never JSON `null` (utoipa marks an `Option` nullable).
fn parameters_are_never_null(doc: &mut Document) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    for item in doc.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            for parameter in op.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else { continue };
                let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else { continue };
                if let SchemaType::Array(types) = &schema.schema_type {
                    let kept: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                    schema.schema_type = match kept.as_slice() {
                        [one] => SchemaType::Type(one.clone()),
                        _ => SchemaType::Array(kept),
                    };
                }
            }
        }
    }
}

/// Text in a request body never holds NUL (PostgreSQL text cannot; the extractor refuses it with a 422): every
/// string of a request body schema says so, beside whatever pattern it has.
fn request_text_has_no_nul(doc: &mut Document) {
    use utoipa::openapi::RefOr;
    let mut bodies = std::collections::BTreeSet::new();
    for item in doc.paths.paths.values() {
        for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().flatten() {
            let Some(RefOr::T(body)) = &op.request_body else { continue };
            for content in body.content.values() {
                if let RefOr::T(content) = content
                    && let Some(RefOr::Ref(reference)) = &content.schema
                    && let Some(name) = reference.ref_location.strip_prefix("#/components/schemas/")
                {
                    bodies.insert(name.to_owned());
                }
            }
        }
    }
    for name in bodies {
        refine_schema(doc, &name, |mut schema| {
            forbid_nul(&mut schema);
            schema
        });
    }
}

fn forbid_nul(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            let is_text = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            // Derive attributes take only a literal: `\S` there is written for "not blank", stated exactly here.
            if map.get("pattern").is_some_and(|p| p == "\\S") {
                map.insert("pattern".to_owned(), Value::String(NOT_BLANK.to_owned()));
            }
            if is_text && !map.contains_key("format") {
                let rule = serde_json::json!({"pattern": "^[^\\u0000]*$"});
                match map.get_mut("allOf") {
                    Some(Value::Array(all)) => all.push(rule),
                    _ => {
                        map.insert("allOf".to_owned(), Value::Array(vec![rule]));
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                // Examples and enumerations are values, not schemas.
                if !matches!(key.as_str(), "example" | "examples" | "enum" | "const" | "default") {
                    forbid_nul(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// Handlers declare the `data` they return; on the wire it is inside the success envelope (`success`, `data`,
/// `message`, `timestamp`), so the document says so (health and metrics answer flat bodies, and are left alone).
fn envelope_success_bodies(doc: &mut Document) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    for (path, item) in doc.paths.paths.iter_mut() {
        if path.starts_with("/v1/health") || path == "/metrics" {
            continue;
        }
        for op in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            for (code, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                if !code.starts_with('2') {
                    continue;
                }
                let Some(RefOr::T(content)) = response.content.get_mut("application/json") else { continue };
                let Some(data) = content.schema.take() else { continue };
                let envelope = ObjectBuilder::new()
                    .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
                    .property("data", data)
                    .property("message", ObjectBuilder::new().schema_type(Type::String))
                    .property("timestamp", ObjectBuilder::new().schema_type(Type::String))
                    .required("success")
                    .required("data")
                    .required("message")
                    .required("timestamp")
                    .build();
                content.schema = Some(RefOr::T(Schema::Object(envelope)));
            }
        }
    }
}

/// Every route can answer the conventions' errors (API.md): a body that is not JSON, malformed or too large, a
/// bad field, a missing or invalid token, an id that names nothing, a dependency down. Each operation lists the
/// ones that apply to it, so the document states every status the service sends.
fn document_common_errors(doc: &mut Document) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_id = path.contains('{');
        let health = path.starts_with("/v1/health") || path == "/metrics";
        for op in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            let mut add = |code: &str, description: &str| {
                op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(description));
            };
            if health {
                continue;
            }
            if op.request_body.is_some() {
                add("400", "`malformed_json`: the body is not JSON");
                add("413", "`payload_too_large`: the body is over 64 KiB");
                add("415", "`unsupported_media_type`: the body is not application/json");
                add("422", "`validation_failed`: `details.fields` names every bad field");
            }
            if has_id {
                add("404", "`not_found`: no such object (or not the caller's)");
            }
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, utoipa::openapi::RefOr::T(p) if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)));
            if has_query {
                add("422", "`validation_failed`: a query parameter is invalid");
            }
            if op.security.is_some() {
                add("401", "`unauthorized`, `invalid_token`, `token_expired` or `token_revoked`");
            }
            if path.starts_with("/v1/admin/") {
                add("403", "`forbidden`: administrators only");
            }
            add("503", "`service_unavailable`: a dependency is down; retry after `Retry-After`");
        }
    }
}

/// utoipa names an operation after its handler function, and several handlers share a name (`list`, `get`): every
/// operation is named from its method and path instead (`get_v1_plans_id`), unique by construction and stable.
fn unique_operation_ids(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let slug: String = path
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        for (method, op) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ] {
            if let Some(op) = op {
                op.operation_id = Some(format!("{method}_{slug}"));
            }
        }
    }
}

/// Replaces the component schema `name` with what `refine` makes of its JSON form: for the rules between fields
/// that the derive cannot state (JSON Schema's `allOf`, `anyOf`, `not`, `propertyNames` …), so a client
/// generating requests from the document sends only what the service accepts. No-op when there is no such schema.
pub fn refine_schema(doc: &mut Document, name: &str, refine: impl FnOnce(serde_json::Value) -> serde_json::Value) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Object, Schema};
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else { return };
    let Some(schema) = schemas.get_mut(name) else { return };
    let Ok(json) = serde_json::to_value(&*schema) else { return };
    let serde_json::Value::Object(refined) = refine(json) else { return };
    // utoipa's schema types cannot hold every keyword; an untyped object carrying them as extensions serialises
    // to exactly the refined JSON.
    let mut raw = Object::new();
    raw.schema_type = utoipa::openapi::schema::SchemaType::AnyValue;
    let extensions = raw.extensions.get_or_insert_with(Default::default);
    extensions.extend(refined);
    *schema = RefOr::T(Schema::Object(raw));
}

/// `base` (an object schema) once for every combination of one alternative from each list of `choices`, as an
/// `anyOf` of whole objects: a generator then picks one and fills it, instead of guessing and filtering. Each
/// alternative's `properties` override the base's property by property (`null` removes the property, which then
/// must be absent: our bodies are closed), and its `required` adds to the base's.
pub fn alternatives(base: &serde_json::Value, choices: &[Vec<serde_json::Value>]) -> serde_json::Value {
    let mut objects = vec![base.clone()];
    for choice in choices {
        objects = objects.iter().flat_map(|object| choice.iter().map(|alt| overlay(object.clone(), alt))).collect();
    }
    serde_json::json!({"anyOf": objects})
}

fn overlay(mut object: serde_json::Value, alternative: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    for (name, property) in alternative["properties"].as_object().into_iter().flatten() {
        let Some(properties) = object["properties"].as_object_mut() else { break };
        match (properties.get_mut(name), property) {
            (_, Value::Null) => {
                properties.remove(name);
                if let Some(required) = object["required"].as_array_mut() {
                    required.retain(|r| r != name);
                }
            }
            (Some(Value::Object(existing)), Value::Object(extra)) => existing.extend(extra.clone()),
            _ => {
                properties.insert(name.clone(), property.clone());
            }
        }
    }
    for name in alternative["required"].as_array().into_iter().flatten() {
        match object["required"].as_array_mut() {
            Some(required) if !required.contains(name) => required.push(name.clone()),
            Some(_) => {}
            None => object["required"] = Value::Array(vec![name.clone()]),
        }
    }
    object
}

/// JSON Schema alternatives (for an `anyOf`) pairing each currency with the pattern its amounts follow in the
/// property `amount`: one alternative per distinct pattern, listing its currencies (`currency`).
pub fn amounts_by_currency<'a>(
    amount: &str,
    patterns: impl IntoIterator<Item = (&'a str, String)>,
) -> Vec<serde_json::Value> {
    let mut groups: std::collections::BTreeMap<String, Vec<&str>> = std::collections::BTreeMap::new();
    for (code, pattern) in patterns {
        groups.entry(pattern).or_default().push(code);
    }
    groups
        .into_iter()
        .map(|(pattern, codes)| {
            serde_json::json!({"properties": {
                "currency": {"enum": codes},
                amount: {"type": "string", "pattern": pattern},
            }})
        })
        .collect()
}

/// Swagger UI at `/docs/` (assets compiled in, so it works offline) and the document at `/openapi.json`.
pub fn swagger(doc: Document) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refined_schema_serialises_to_exactly_the_refined_json() {
        let mut doc = CommonApi::openapi();
        refine_schema(
            &mut doc,
            "BasicHealth",
            |original| json!({"allOf": [original, {"anyOf": [{"required": ["status"]}, {"not": {"required": ["x"]}}]}]}),
        );
        let served = serde_json::to_value(&doc).unwrap_or_default();
        let schema = &served["components"]["schemas"]["BasicHealth"];
        assert_eq!(schema["allOf"][1]["anyOf"][1], json!({"not": {"required": ["x"]}}));
        assert_eq!(schema["allOf"][0]["type"], "object", "the original schema is kept inside: {schema}");
        assert_eq!(schema.as_object().map(|o| o.len()), Some(1), "nothing else is added: {schema}");
    }

    #[test]
    fn alternatives_are_whole_objects_one_per_combination() {
        let base = json!({"type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"type": "string"}, "b": {"type": ["string", "null"]}, "c": {"type": "integer"}}});
        let out = alternatives(
            &base,
            &[
                vec![
                    json!({"properties": {"b": null}}),
                    json!({"required": ["b"], "properties": {"b": {"type": "string"}}}),
                ],
                vec![json!({"properties": {"c": {"minimum": 1}}}), json!({"properties": {"a": null}})],
            ],
        );
        let objects = out["anyOf"].as_array().cloned().unwrap_or_default();
        assert_eq!(objects.len(), 4);
        assert_eq!(objects[0]["properties"].as_object().map(|p| p.len()), Some(2), "b removed: {}", objects[0]);
        assert_eq!(objects[0]["properties"]["c"], json!({"type": "integer", "minimum": 1}), "merged, not replaced");
        assert_eq!(objects[1]["required"], json!([]), "a removed from required too: {}", objects[1]);
        assert_eq!(objects[2]["required"], json!(["a", "b"]));
        assert_eq!(objects[2]["properties"]["b"]["type"], "string");
        assert_eq!(objects[3]["additionalProperties"], false);
    }
}
