//! The HTTP surface every service shares, exercised through the real app builder: envelopes, error mapping,
//! request ids, body limits, routing errors, security headers, CORS, health status codes, docs and metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, test, web};
use billing_config::{AppEnv, Loader, ServiceKind, Settings};
use billing_http::health::{CheckOutcome, Health, HealthCheck};
use billing_http::server::AppContext;
use billing_http::{ApiError, Json, ok};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

fn settings() -> Arc<Settings> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/environments");
    let loader = Loader::new(dir, HashMap::from([("APP_ENV".to_owned(), "test".to_owned())]));
    let layers = loader.load(AppEnv::Test).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Settings::from_layers(&layers, ServiceKind::Subscription).unwrap_or_else(|e| panic!("{e}")))
}

struct Fixed(&'static str, bool);

impl HealthCheck for Fixed {
    fn name(&self) -> &'static str {
        self.0
    }
    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        let healthy = self.1;
        Box::pin(async move {
            if healthy {
                CheckOutcome::healthy(Duration::from_millis(1))
            } else {
                CheckOutcome::unhealthy(Duration::from_millis(1), "redis unreachable")
            }
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Widget {
    name: String,
    size: u32,
}

async fn create_widget(body: Json<Widget>) -> HttpResponse {
    let widget = body.into_inner();
    billing_http::created(json!({"name": widget.name, "size": widget.size}), "widget created")
}

async fn get_widget(id: web::Path<uuid::Uuid>) -> HttpResponse {
    ok(json!({"id": id.into_inner()}), "widget")
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: u32,
}

async fn list_widgets(page: web::Query<Page>) -> HttpResponse {
    ok(json!({"limit": page.limit}), "widgets")
}

async fn fail(kind: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Err(match kind.as_str() {
        "internal" => ApiError::internal(&"SELECT password_hash FROM users; connection to 10.0.0.5 refused"),
        "unauthorized" => ApiError::unauthorized("invalid_token", "the access token is invalid"),
        "limited" => ApiError::rate_limited(42),
        "conflict" => ApiError::conflict("already_subscribed", "the user already has a subscription"),
        _ => ApiError::not_found("widget_not_found", "no such widget"),
    })
}

macro_rules! service {
    ($checks:expr) => {{
        let ctx = AppContext {
            settings: settings(),
            health: Health::new("test-service", "9.9.9", $checks),
            openapi: Arc::new(billing_http::openapi::document(Default::default(), "test-service", "a test")),
            metrics: billing_http::metrics::install(),
        };
        test::init_service(billing_http::app(ctx, |cfg| {
            cfg.service(
                web::resource("/v1/widgets").route(web::post().to(create_widget)).route(web::get().to(list_widgets)),
            )
            .service(web::resource("/v1/widgets/{id}").route(web::get().to(get_widget)))
            .service(web::resource("/v1/fail/{kind}").route(web::get().to(fail)));
        }))
        .await
    }};
}

fn healthy_checks() -> Vec<Arc<dyn HealthCheck>> {
    vec![Arc::new(Fixed("database", true)), Arc::new(Fixed("redis", true))]
}

async fn body_json<B: actix_web::body::MessageBody>(res: actix_web::dev::ServiceResponse<B>) -> Value {
    let bytes = test::read_body(res).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

fn assert_error_envelope(body: &Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert!(body["details"].is_object(), "{body}");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
    assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
}

#[actix_web::test]
async fn success_responses_use_the_envelope() {
    let app = service!(healthy_checks());
    let req = test::TestRequest::post().uri("/v1/widgets").set_json(json!({"name": "a", "size": 3})).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = body_json(res).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["data"], json!({"name": "a", "size": 3}));
    assert_eq!(body["message"], "widget created");
    let ts = body["timestamp"].as_str().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'), "{ts}");
}

#[actix_web::test]
async fn api_errors_map_to_status_code_and_envelope() {
    let app = service!(healthy_checks());
    for (kind, status, code) in [
        ("missing", 404, "widget_not_found"),
        ("conflict", 409, "already_subscribed"),
        ("unauthorized", 401, "invalid_token"),
        ("limited", 429, "rate_limited"),
        ("internal", 500, "internal_error"),
    ] {
        let res =
            test::call_service(&app, test::TestRequest::get().uri(&format!("/v1/fail/{kind}")).to_request()).await;
        assert_eq!(res.status().as_u16(), status, "{kind}");
        let headers = res.headers().clone();
        let body = body_json(res).await;
        assert_error_envelope(&body, code);
        assert_eq!(
            body["request_id"].as_str(),
            headers.get("x-request-id").and_then(|v| v.to_str().ok()),
            "the body names the same request id as the header"
        );
        match status {
            401 => assert_eq!(headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer")),
            429 => assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("42")),
            _ => {}
        }
    }
}

#[actix_web::test]
async fn server_errors_never_carry_internals() {
    let app = service!(healthy_checks());
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/fail/internal").to_request()).await;
    let text = String::from_utf8_lossy(&test::read_body(res).await).to_string();
    for leak in ["SELECT", "password_hash", "10.0.0.5", "refused"] {
        assert!(!text.contains(leak), "5xx body leaks {leak}: {text}");
    }
    assert!(text.contains("internal_error"));
}

#[actix_web::test]
async fn malformed_json_is_400() {
    let app = service!(healthy_checks());
    for payload in [&b"{\"name\": "[..], b"not json at all", b""] {
        let req = test::TestRequest::post()
            .uri("/v1/widgets")
            .insert_header(("content-type", "application/json"))
            .set_payload(payload.to_vec())
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{payload:?}");
        assert_error_envelope(&body_json(res).await, "malformed_json");
    }
}

#[actix_web::test]
async fn wrong_shape_is_422_naming_each_field() {
    let app = service!(healthy_checks());
    let cases = [
        (json!({"name": "a", "size": 1, "status": "paid"}), "status", "unknown field"),
        (json!({"size": 1}), "name", "is required"),
    ];
    for (payload, field, message) in cases {
        let req = test::TestRequest::post().uri("/v1/widgets").set_json(&payload).to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{payload}");
        let body = body_json(res).await;
        assert_error_envelope(&body, "validation_failed");
        assert_eq!(body["details"]["fields"][field], message, "{body}");
    }
    let req = test::TestRequest::post().uri("/v1/widgets").set_json(json!({"name": "a", "size": "big"})).to_request();
    let body = body_json(test::call_service(&app, req).await).await;
    assert!(body["details"]["fields"]["size"].as_str().is_some_and(|m| m.contains("invalid type")), "{body}");
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415() {
    let app = service!(healthy_checks());
    let req = test::TestRequest::post()
        .uri("/v1/widgets")
        .insert_header(("content-type", "text/plain"))
        .set_payload("name=a")
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_envelope(&body_json(res).await, "unsupported_media_type");
}

#[actix_web::test]
async fn bodies_over_64_kib_are_413() {
    let app = service!(healthy_checks());
    let big = json!({"name": "x".repeat(70 * 1024), "size": 1});
    let req = test::TestRequest::post().uri("/v1/widgets").set_json(&big).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_envelope(&body_json(res).await, "payload_too_large");

    // The limit holds on routes that read no body too.
    let req = test::TestRequest::get().uri("/v1/health").set_payload(vec![b'a'; 65 * 1024]).to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let just_fits = json!({"name": "x".repeat(60 * 1024), "size": 1});
    let req = test::TestRequest::post().uri("/v1/widgets").set_json(&just_fits).to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_the_envelope() {
    let app = service!(healthy_checks());
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/nothing/here").to_request()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_error_envelope(&body_json(res).await, "not_found");

    for (method, uri) in [("DELETE", "/v1/widgets"), ("PUT", "/v1/health"), ("POST", "/v1/health/detailed")] {
        let req = test::TestRequest::default()
            .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap_or_default())
            .uri(uri)
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_error_envelope(&body_json(res).await, "method_not_allowed");
    }
}

#[actix_web::test]
async fn a_malformed_id_in_the_path_is_404() {
    let app = service!(healthy_checks());
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/widgets/not-a-uuid").to_request()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_error_envelope(&body_json(res).await, "not_found");
}

#[actix_web::test]
async fn a_bad_query_string_is_422() {
    let app = service!(healthy_checks());
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/widgets?limit=lots").to_request()).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_envelope(&body_json(res).await, "validation_failed");
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/widgets?limit=5").to_request()).await;
    assert_eq!(body_json(res).await["data"]["limit"], 5);
}

#[actix_web::test]
async fn the_trailing_slash_is_optional() {
    let app = service!(healthy_checks());
    for uri in ["/v1/health", "/v1/health/", "/v1/widgets/?limit=2", "/v1/widgets?limit=2"] {
        let res = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
    }
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let app = service!(healthy_checks());
    let req = test::TestRequest::get().uri("/v1/health").insert_header(("x-request-id", "trace-abc-123")).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-abc-123"));

    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/health").to_request()).await;
    let generated = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    // An unreasonable incoming id is replaced, never reflected.
    let req = test::TestRequest::get().uri("/v1/health").insert_header(("x-request-id", "x".repeat(500))).to_request();
    let res = test::call_service(&app, req).await;
    let replaced = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
}

#[actix_web::test]
async fn security_headers_are_on_every_response() {
    let app = service!(healthy_checks());
    for uri in ["/v1/health", "/v1/nothing", "/openapi.json"] {
        let res = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        let h = res.headers();
        assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"), "{uri}");
        assert_eq!(h.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"), "{uri}");
        assert!(h.contains_key("content-security-policy"), "{uri}");
        assert!(h.contains_key("strict-transport-security"), "{uri}");
        assert_eq!(h.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"), "{uri}");
    }
}

#[actix_web::test]
async fn cors_allows_configured_origins_only() {
    let app = service!(healthy_checks());
    let preflight = |origin: &'static str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v1/widgets")
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .to_request()
    };
    let res = test::call_service(&app, preflight("http://localhost:3000")).await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("http://localhost:3000")
    );
    let res = test::call_service(&app, preflight("https://evil.example")).await;
    assert!(res.headers().get("access-control-allow-origin").is_none(), "foreign origin allowed");
}

#[actix_web::test]
async fn detailed_health_is_503_naming_the_dependency_that_is_down() {
    let app = service!(healthy_checks());
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/health/detailed").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_json(res).await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["database"]["status"], "healthy");

    let app = service!(vec![Arc::new(Fixed("database", true)), Arc::new(Fixed("redis", false))]);
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/health/detailed").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_json(res).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["redis"]["status"], "unhealthy");
    assert_eq!(body["checks"]["redis"]["error"], "redis unreachable");
    assert_eq!(body["checks"]["database"]["status"], "healthy");

    // The basic check never touches dependencies.
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/health").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_json(res).await, json!({"status": "healthy", "service": "test-service", "version": "9.9.9"}));
}

#[actix_web::test]
async fn docs_and_openapi_are_served() {
    let app = service!(healthy_checks());
    let res = test::call_service(&app, test::TestRequest::get().uri("/docs").to_request()).await;
    assert!(res.status().is_redirection());
    let res = test::call_service(&app, test::TestRequest::get().uri("/docs/").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8_lossy(&test::read_body(res).await).to_string();
    assert!(html.contains("swagger-ui"), "{html}");
    let res = test::call_service(&app, test::TestRequest::get().uri("/docs/swagger-ui-bundle.js").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK, "Swagger UI assets are compiled in");

    let res = test::call_service(&app, test::TestRequest::get().uri("/openapi.json").to_request()).await;
    let doc = body_json(res).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    for path in ["/v1/health", "/v1/health/detailed", "/metrics"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the document");
    }
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = service!(healthy_checks());
    for _ in 0..3 {
        let res = test::call_service(&app, test::TestRequest::get().uri("/v1/widgets/not-a-uuid").to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let res = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8_lossy(&test::read_body(res).await).to_string();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total")
                && l.contains("route=\"/v1/widgets/{id}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("no request counter for the route: {text}"));
    let count: f64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_default();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "latency histogram missing");
}
