//! `/v1/auth`: registration, login, refresh rotation, the current user, and token checks.

use crate::common;

use base64::Engine as _;
use common::Ctx;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn register_returns_tokens_and_me_shows_the_account() {
    let ctx = Ctx::new().await;
    let res = ctx
        .call(Method::POST, "/v1/auth/register", None, Some(json!({"email": "  Ada@Example.COM ", "password": "analytical engine 1843", "first_name": "Ada", "last_name": "Lovelace"})))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let data = res.data();
    assert_eq!(data["token_type"], "bearer");
    assert_eq!(data["expires_in"], 3600);
    assert_eq!(data["email"], "ada@example.com", "emails are trimmed and lower-cased");
    assert!(data["refresh_token"].as_str().is_some_and(|t| t.starts_with("rt_")));
    let token = data["access_token"].as_str().unwrap_or_default();
    let me = ctx.call(Method::GET, "/v1/auth/me", Some(token), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.data()["email"], "ada@example.com");
    assert_eq!(me.data()["first_name"], "Ada");
    assert_eq!(me.data()["role"], "user");
    assert_eq!(me.data()["id"], data["user_id"]);
    assert!(me.data().get("password_hash").is_none());
}

#[tokio::test]
async fn emails_are_unique_case_insensitively() {
    let ctx = Ctx::new().await;
    let body = |email: &str| Some(json!({"email": email, "password": "sturdy pass 42"}));
    assert_eq!(ctx.call(Method::POST, "/v1/auth/register", None, body("dup@example.com")).await.status, 201);
    let again = ctx.call(Method::POST, "/v1/auth/register", None, body("DUP@example.com")).await;
    assert_eq!((again.status, again.code()), (409, "email_taken"));
}

#[tokio::test]
async fn registration_validates_every_field() {
    let ctx = Ctx::new().await;
    let res = ctx
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": "not-an-email", "password": "short", "first_name": ""})),
        )
        .await;
    assert_eq!((res.status, res.code()), (422, "validation_failed"));
    let fields = &res.body["details"]["fields"];
    assert!(
        fields["email"].is_string() && fields["password"].is_string() && fields["first_name"].is_string(),
        "{fields}"
    );
    for (password, why) in
        [("password1", "common"), ("onlyletters", "letter and one digit"), ("12345678901", "letter and one digit")]
    {
        let res = ctx
            .call(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": "x@example.com", "password": password})),
            )
            .await;
        assert_eq!(res.status, 422, "{password}");
        assert!(res.body["details"]["fields"]["password"].as_str().is_some_and(|m| m.contains(why)), "{}", res.body);
    }
    let res = ctx
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": "x@example.com", "password": "sturdy pass 42", "role": "admin"})),
        )
        .await;
    assert_eq!(res.status, 422, "mass assignment of role refused");
    assert_eq!(res.body["details"]["fields"]["role"], "unknown field");
}

#[tokio::test]
async fn login_gives_the_same_answer_for_unknown_email_and_wrong_password() {
    let ctx = Ctx::new().await;
    ctx.register("bob@example.com", "sturdy pass 42").await;
    let ok = ctx.login("BOB@example.com", "sturdy pass 42").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let wrong = ctx.login("bob@example.com", "wrong pass 42").await;
    let unknown = ctx.login("nobody@example.com", "wrong pass 42").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    assert_eq!((unknown.status, unknown.code()), (401, "invalid_credentials"));
    assert_eq!(wrong.body["error"], unknown.body["error"]);
    assert_eq!(wrong.headers.get("www-authenticate"), unknown.headers.get("www-authenticate"));
}

#[tokio::test]
async fn ten_failed_logins_are_rate_limited_with_retry_after() {
    let ctx = Ctx::new().await;
    ctx.register("eve@example.com", "sturdy pass 42").await;
    for i in 0..10 {
        let res = ctx.login("eve@example.com", "guess 1234").await;
        assert_eq!(res.status, 401, "attempt {i}");
    }
    let limited = ctx.login("eve@example.com", "sturdy pass 42").await;
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    let retry: u64 =
        limited.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // Another account from the same address is unaffected.
    let other = ctx.login("root@example.com", "admin pass 1234").await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let ctx = Ctx::new().await;
    let reg = ctx.register("rot@example.com", "sturdy pass 42").await;
    let first = reg.data()["refresh_token"].as_str().unwrap_or_default().to_owned();
    let second = ctx.call(Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let second_token = second.data()["refresh_token"].as_str().unwrap_or_default().to_owned();
    assert_ne!(second_token, first);
    assert_eq!(ctx.call(Method::GET, "/v1/auth/me", second.data()["access_token"].as_str(), None).await.status, 200);

    // The used token is refused, and presenting it revokes the newer one too.
    let reused = ctx.call(Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!((reused.status, reused.code()), (401, "invalid_refresh_token"));
    let after = ctx.call(Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": second_token}))).await;
    assert_eq!(after.status, 401, "the family is revoked");
    let junk = ctx.call(Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": "rt_nonsense"}))).await;
    assert_eq!(junk.status, 401);
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn bad_tokens_get_401() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let parts: Vec<&str> = token.split('.').collect();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
            .unwrap_or_default();
    let with = |patch: serde_json::Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        format!("{}.{}.{}", parts[0], b64(c.to_string().as_bytes()), parts[2])
    };
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let cases = [
        ("missing", None),
        ("alg none", Some(none)),
        ("wrong issuer", Some(with(json!({"iss": "someone-else"})))),
        ("wrong audience", Some(with(json!({"aud": "other-api"})))),
        ("expired", Some(with(json!({"exp": 1_600_000_000})))),
        ("bad signature", Some(format!("{}.{}.{}", parts[0], parts[1], b64(b"forged signature bytes")))),
        ("garbage", Some("abc".to_owned())),
    ];
    for (what, bad) in cases {
        let res = ctx.call(Method::GET, "/v1/auth/me", bad.as_deref(), None).await;
        assert_eq!(res.status, 401, "{what}: {}", res.body);
        assert_eq!(res.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"), "{what}");
    }
    assert_eq!(ctx.call(Method::GET, "/v1/auth/me", Some(&token), None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_rate_limited_per_client_address() {
    let ctx = Ctx::new().await;
    for n in 0..20 {
        let res = ctx.register(&format!("burst{n}@example.com"), "sturdy pass 42").await;
        assert_eq!(res.status, 201, "registration {n}: {}", res.body);
    }
    let limited = ctx.register("burst20@example.com", "sturdy pass 42").await;
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    let retry: u64 =
        limited.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    // Invalid input is refused before it counts.
    let invalid = ctx.register("not-an-email", "x").await;
    assert_eq!(invalid.status, 422);
}
