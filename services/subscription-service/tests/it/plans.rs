//! `/v1/plans` and `/v1/admin/plans`.

use crate::common;

use common::Ctx;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_catalog_lists_the_seed_plans() {
    let ctx = Ctx::new().await;
    let res = ctx.call(Method::GET, "/v1/plans/", None, None).await;
    assert_eq!(res.status, 200);
    let plans = res.data().as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = plans.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["Basic Trial", "Basic", "Pro", "Enterprise", "Pro Annual"]);
    assert_eq!(plans[0]["id"], 1);
    assert_eq!(plans[0]["is_trial_plan"], true);
    assert_eq!(plans[0]["trial_period_days"], 30);
    assert_eq!(plans[0]["converts_to_plan_id"], 2);
    assert_eq!(plans[0]["features"], json!({"api_calls": {"limit": 1000}, "storage": {"limit": "1GB"}}));
    assert_eq!((plans[1]["price"].as_str(), plans[1]["currency"].as_str()), (Some("29.99"), Some("USD")));
    assert_eq!(plans[4]["billing_cycle"], "yearly");
    assert_eq!(plans[4]["price"], "999.00");

    let one = ctx.call(Method::GET, "/v1/plans/3", None, None).await;
    assert_eq!((one.status, one.data()["name"].as_str()), (200, Some("Pro")));
    let missing = ctx.call(Method::GET, "/v1/plans/999", None, None).await;
    assert_eq!((missing.status, missing.code()), (404, "plan_not_found"));
    assert_eq!(ctx.call(Method::GET, "/v1/plans/abc", None, None).await.status, 404);
}

#[tokio::test]
async fn only_admins_manage_plans() {
    let ctx = Ctx::new().await;
    let user = ctx.user().await;
    let body = json!({"code": "team", "name": "Team", "price": "49.00", "currency": "USD", "billing_cycle": "monthly"});
    assert_eq!(ctx.call(Method::POST, "/v1/admin/plans", None, Some(body.clone())).await.status, 401);
    let res = ctx.call(Method::POST, "/v1/admin/plans", Some(&user), Some(body.clone())).await;
    assert_eq!((res.status, res.code()), (403, "forbidden"));
    assert_eq!(ctx.call(Method::PUT, "/v1/admin/plans/2", Some(&user), Some(json!({"name": "x"}))).await.status, 403);
    assert_eq!(ctx.call(Method::DELETE, "/v1/admin/plans/2", Some(&user), None).await.status, 403);
}

#[tokio::test]
async fn admins_create_update_and_deactivate_plans() {
    let ctx = Ctx::new().await;
    let admin = ctx.admin.clone();
    let body = json!({"code": "team", "name": "Team", "price": 49.5, "currency": "JPY", "billing_cycle": "monthly",
        "features": {"api_calls": {"limit": 5000}, "sso": true}});
    let res = ctx.call(Method::POST, "/v1/admin/plans", Some(&admin), Some(body.clone())).await;
    assert_eq!((res.status, res.code()), (422, "validation_failed"), "JPY has no minor digits");
    assert!(res.body["details"]["fields"]["price"].is_string());

    let mut body = body;
    body["currency"] = json!("USD");
    let created = ctx.call(Method::POST, "/v1/admin/plans", Some(&admin), Some(body.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.data()["price"], "49.50");
    let id = created.data()["id"].as_i64().unwrap_or_default();
    let dup = ctx.call(Method::POST, "/v1/admin/plans", Some(&admin), Some(body)).await;
    assert_eq!((dup.status, dup.code()), (409, "plan_code_taken"));

    // A partial update raises one limit; the catalog shows it at once.
    let updated = ctx
        .call(
            Method::PUT,
            &format!("/v1/admin/plans/{id}"),
            Some(&admin),
            Some(json!({"features": {"api_calls": {"limit": 9000}}})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.data()["name"], "Team");
    let shown = ctx.call(Method::GET, &format!("/v1/plans/{id}"), None, None).await;
    assert_eq!(shown.data()["features"]["api_calls"]["limit"], 9000);

    let bad = ctx
        .call(
            Method::PUT,
            &format!("/v1/admin/plans/{id}"),
            Some(&admin),
            Some(json!({"billing_cycle": "weekly", "features": {"x": {"limit": -1}}, "price": "-1"})),
        )
        .await;
    assert_eq!(bad.status, 422);
    let fields = &bad.body["details"]["fields"];
    assert!(
        fields["billing_cycle"].is_string() && fields["features.x.limit"].is_string() && fields["price"].is_string(),
        "{fields}"
    );
    assert_eq!(
        ctx.call(Method::PUT, &format!("/v1/admin/plans/{id}"), Some(&admin), Some(json!({"id": 7}))).await.status,
        422
    );
    assert_eq!(
        ctx.call(Method::PUT, "/v1/admin/plans/999", Some(&admin), Some(json!({"name": "x"}))).await.status,
        404
    );

    let gone = ctx.call(Method::DELETE, &format!("/v1/admin/plans/{id}"), Some(&admin), None).await;
    assert_eq!((gone.status, gone.data()["is_active"].as_bool()), (200, Some(false)));
    assert_eq!(ctx.call(Method::GET, &format!("/v1/plans/{id}"), None, None).await.status, 404);
    let listed = ctx.call(Method::GET, "/v1/plans", None, None).await;
    assert!(listed.data().as_array().is_some_and(|a| a.iter().all(|p| p["id"] != id)));
}

#[tokio::test]
async fn a_price_below_the_minimum_charge_is_refused_unless_free_and_currency_codes_take_any_case() {
    let ctx = Ctx::new().await;
    let plan = |code: &str, price: &str, currency: &str| json!({"code": code, "name": "P", "price": price, "currency": currency, "billing_cycle": "monthly"});
    let res = ctx.call(Method::POST, "/v1/admin/plans", Some(&ctx.admin), Some(plan("cheap", "0.49", "USD"))).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.body["details"]["fields"]["price"].as_str().is_some_and(|m| m.contains("0.50")), "{}", res.body);
    let res = ctx.call(Method::POST, "/v1/admin/plans", Some(&ctx.admin), Some(plan("yen", "49", "JPY"))).await;
    assert_eq!(res.status, 422, "JPY's minimum is 50: {}", res.body);
    let free = ctx.call(Method::POST, "/v1/admin/plans", Some(&ctx.admin), Some(plan("free", "0", "USD"))).await;
    assert_eq!(free.status, 201, "a free plan is fine: {}", free.body);
    let lower = ctx.call(Method::POST, "/v1/admin/plans", Some(&ctx.admin), Some(plan("lower", "0.50", "usd"))).await;
    assert_eq!((lower.status, lower.data()["currency"].as_str()), (201, Some("USD")), "{}", lower.body);
}
