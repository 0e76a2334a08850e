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
    service
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

/// Swagger UI at `/docs/` (assets compiled in, so it works offline) and the document at `/openapi.json`.
pub fn swagger(doc: Document) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc)
}
