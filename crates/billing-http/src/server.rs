//! The application every service serves: common routes and middleware around the service's own routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use billing_config::Settings;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::Health;
use crate::{ApiError, extract, middleware, openapi};

/// What the common part of the app needs; cheap to clone per HTTP worker.
#[derive(Clone)]
pub struct AppContext {
    pub settings: Arc<Settings>,
    pub health: Health,
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    pub metrics: PrometheusHandle,
}

/// The service's routes, registered on every HTTP worker.
pub type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The full application: `configure` adds the service's routes and state.
pub fn app(
    ctx: AppContext,
    configure: impl FnOnce(&mut web::ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(extract::json_config())
        .app_data(extract::path_config())
        .app_data(extract::query_config())
        .app_data(extract::payload_config())
        .app_data(web::Data::new(ctx.health.clone()))
        .app_data(web::Data::new(ctx.metrics.clone()))
        .configure(crate::health::configure)
        // The service's routes ahead of the Swagger UI's `/docs/{tail}` pattern, which the router would otherwise
        // try (a regular expression) on every request.
        .configure(configure)
        .service(web::resource("/metrics").route(web::get().to(crate::metrics::render)))
        .service(web::redirect("/docs", "/docs/"))
        .service(openapi::swagger((*ctx.openapi).clone()))
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::not_found("not_found", "no such route"))
        }))
        .wrap(cors(&ctx.settings.http.cors_allowed_origins))
        .wrap(from_fn(middleware::security_headers))
        .wrap(from_fn(middleware::request_context))
        .wrap(from_fn(middleware::trim_trailing_slash))
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(3600)
        // A foreign origin gets no CORS headers (the browser then blocks it) rather than an error response.
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = if origin == "*" { cors.allow_any_origin() } else { cors.allowed_origin(origin) };
    }
    cors
}

/// Starts serving on `listener` with the configured worker count and graceful shutdown timeout.
pub fn serve(ctx: AppContext, routes: Routes, listener: TcpListener) -> std::io::Result<Server> {
    let workers = ctx.settings.http.workers;
    let shutdown = ctx.settings.http.shutdown_timeout;
    let server = HttpServer::new(move || {
        let routes = routes.clone();
        app(ctx.clone(), move |cfg| routes(cfg))
    })
    .workers(workers)
    .shutdown_timeout(shutdown.as_secs())
    .listen(listener)?
    .run();
    Ok(server)
}
