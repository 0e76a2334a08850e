//! The OpenAPI document lists every route with its request and response schemas.

use crate::common;

use common::Ctx;
use reqwest::Method;
use serde_json::json;

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
        ("get", "/v1/invoices/upcoming"),
        ("get", "/v1/invoices/{id}"),
        ("post", "/v1/usage/use"),
        ("get", "/v1/usage/me"),
        ("get", "/v1/usage/limits"),
        ("get", "/v1/entitlements/me"),
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

/// Requests the document allows are accepted (schemathesis's `positive_data_acceptance` found each refused): whole
/// numbers written `2.0`, keys measured in characters, a plan named in a body that does not exist is a 404 as
/// elsewhere, and the document states the rules it used to leave out.
#[tokio::test]
async fn what_the_document_allows_is_accepted() {
    let ctx = Ctx::new().await;
    let admin = ctx.admin.clone();
    let trial = ctx.user().await;
    let res =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&trial), Some(json!({"trial_plan_id": 1.0}))).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let key = "ключ".repeat(63); // 252 characters, 504 bytes
    let res = ctx
        .call(
            Method::POST,
            "/v1/usage/use",
            Some(&trial),
            Some(json!({"feature_name": "api_calls", "delta": 2.0, "idempotency_key": key})),
        )
        .await;
    assert_eq!((res.status, res.data()["current_usage"].as_i64()), (200, Some(2)), "{}", res.body);
    let buyer = ctx.user().await;
    let res =
        ctx.call(Method::POST, "/v1/subscriptions", Some(&buyer), Some(json!({"plan_id": 2.0, "quantity": 1.0}))).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = ctx.call(Method::POST, "/v1/subscriptions", Some(&buyer), Some(json!({"plan_id": 2.5}))).await;
    assert_eq!(res.status, 422, "a fraction is not a plan id");

    let plan = json!({"code": "team", "name": "Team", "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
        "converts_to_plan_id": 8673, "features": {"api_calls": {"limit": 10.0}}});
    let res = ctx.call(Method::POST, "/v1/admin/plans", Some(&admin), Some(plan.clone())).await;
    assert_eq!((res.status, res.code()), (404, "plan_not_found"), "{}", res.body);
    let res =
        ctx.call(Method::PUT, "/v1/admin/plans/2", Some(&admin), Some(json!({"converts_to_plan_id": 8673}))).await;
    assert_eq!((res.status, res.code()), (404, "plan_not_found"));
    let mut plan = plan;
    plan["converts_to_plan_id"] = json!(2);
    assert_eq!(ctx.call(Method::POST, "/v1/admin/plans", Some(&admin), Some(plan)).await.status, 201);

    let doc: serde_json::Value = ctx.app.get("/openapi.json").await.json().await.unwrap_or_default();
    let schemas = &doc["components"]["schemas"];
    let password = &schemas["RegisterBody"]["properties"]["password"];
    assert_eq!((password["minLength"].as_u64(), password["maxLength"].as_u64()), (Some(8), Some(128)));
    assert_eq!(schemas["UseBody"]["properties"]["idempotency_key"]["maxLength"], 255);
    let created = schemas["PlanCreateBody"]["anyOf"].as_array().cloned().unwrap_or_default();
    let jpy = created
        .iter()
        .find(|alt| alt["properties"]["currency"]["enum"].as_array().is_some_and(|codes| codes.contains(&json!("JPY"))))
        .unwrap_or_else(|| panic!("no JPY alternative"));
    assert_eq!(
        jpy["properties"]["price"]["pattern"], "^(0|([5-9][0-9]{1}|[1-9][0-9]{2,11}))$",
        "JPY: whole yen, 0 or ≥ 50"
    );
    let if_match = doc["paths"]["/v1/subscriptions/{id}"]["put"]["parameters"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "If-Match").cloned())
        .unwrap_or_default();
    assert_eq!(if_match["schema"]["type"], "string", "a header is never null: {if_match}");
}
