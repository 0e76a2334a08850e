//! The OpenAPI document lists every route with its request and response schemas.

use crate::common;

use common::Ctx;
use reqwest::Method;

#[tokio::test]
async fn every_route_is_documented_with_schemas() {
    let ctx = Ctx::new().await;
    let doc: serde_json::Value = ctx.app.get("/openapi.json").await.json().await.unwrap_or_default();
    let routes = [
        ("post", "/v1/auth/register"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("get", "/v1/auth/me"),
        ("get", "/v1/plans"),
        ("get", "/v1/plans/{id}"),
        ("post", "/v1/admin/plans"),
        ("put", "/v1/admin/plans/{id}"),
        ("delete", "/v1/admin/plans/{id}"),
        ("post", "/v1/subscriptions"),
        ("post", "/v1/subscriptions/trial"),
        ("get", "/v1/subscriptions/me"),
        ("get", "/v1/subscriptions/{id}"),
        ("put", "/v1/subscriptions/{id}"),
        ("delete", "/v1/subscriptions/{id}"),
        ("post", "/v1/subscriptions/{id}/reactivate"),
        ("get", "/v1/subscriptions/{id}/events"),
        ("get", "/v1/invoices/me"),
        ("get", "/v1/invoices/{id}"),
        ("post", "/v1/usage/use"),
        ("get", "/v1/usage/me"),
        ("get", "/v1/usage/limits"),
        ("get", "/v1/health"),
        ("get", "/v1/health/detailed"),
    ];
    billing_testkit::assert_openapi_is_consistent(&doc, &routes);
    billing_testkit::assert_openapi_is_consistent(&doc, &[("put", "/v1/admin/users/{id}/role")]);
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let ok = op["responses"].as_object().and_then(|r| r.iter().find(|(code, _)| code.starts_with('2')));
        assert!(
            ok.is_some_and(|(_, r)| r["content"]["application/json"]["schema"].is_object()),
            "{method} {path}: no success schema"
        );
        if matches!(method, "post" | "put") && !path.ends_with("/reactivate") {
            assert!(
                op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                "{method} {path}: no request schema"
            );
        }
    }
    // Every documented path answers something other than 404-no-route (the document matches the router).
    for path in doc["paths"].as_object().into_iter().flatten().map(|(p, _)| p.replace("{id}", "1")) {
        let res = ctx.send(Method::GET, &path, None, None).await;
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert!(body["error"] != "no such route", "{path} is documented but not routed");
    }
}
