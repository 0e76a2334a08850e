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
    service
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
