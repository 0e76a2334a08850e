//! Checks every service must pass, written once and called from each service's tests.

use std::time::Duration;

use billing_runtime::Service;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::{MigrationSet, RedisServer, TestApp, TestDb, poll_until};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Counts the objects a migration set creates in `public` (tables, functions, types, indexes, extensions),
/// so "down" can be checked to leave nothing behind.
async fn schema_objects(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect to the test database");
    sql_query(
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = 'public' AND c.relname <> '__diesel_schema_migrations' \
                  AND c.relname NOT LIKE '__diesel_schema_migrations%') \
              + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public') \
              + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                  WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')) \
              + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS n",
    )
    .get_result::<Count>(&mut conn)
    .await
    .expect("count schema objects")
    .n
}

/// Every migration of `set` applies on an empty database, reverts completely, and applies again.
pub async fn assert_migrations_round_trip(set: MigrationSet) {
    let db = TestDb::empty(set.service).await;
    assert_eq!(schema_objects(&db.url).await, 0, "a new database starts empty");

    let first = billing_infra::migrate::run_pending(&db.url, (set.embedded)()).await.expect("migrations apply (up)");
    assert!(!first.is_empty(), "no migrations found for {}", set.dir());
    let objects = schema_objects(&db.url).await;
    assert!(objects > 0, "the migrations created nothing");
    let again = billing_infra::migrate::run_pending(&db.url, (set.embedded)()).await.expect("re-running is a no-op");
    assert!(again.is_empty(), "migrations applied twice: {again:?}");

    let reverted =
        billing_infra::migrate::revert_all(&db.url, (set.embedded)()).await.expect("migrations revert (down)");
    let mut expected_down = first.clone();
    expected_down.reverse();
    assert_eq!(reverted, expected_down, "down runs every migration, newest first");
    assert_eq!(schema_objects(&db.url).await, 0, "down left objects behind");

    let second =
        billing_infra::migrate::run_pending(&db.url, (set.embedded)()).await.expect("migrations apply again (up)");
    assert_eq!(second, first, "the second up applies the same migrations");
    assert_eq!(schema_objects(&db.url).await, objects, "the second up builds the same schema");
}

async fn detailed(app: &TestApp) -> (u16, Value) {
    let res = app.get("/v1/health/detailed").await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("health answers JSON"))
}

/// `/v1/health/detailed` reports the real database and Redis, turns 503 naming Redis while Redis is down,
/// and returns to 200 by itself when Redis is back, without a restart; likewise for an unreachable database.
/// `settings` are the service's other dependencies (the payment service's gateway).
pub async fn assert_health_follows_its_dependencies<S: Service>(set: MigrationSet, settings: &[(&str, String)]) {
    let mut redis = RedisServer::start();
    let mut overrides = vec![("REDIS_URL", redis.url())];
    overrides.extend(settings.iter().cloned());
    let app = TestApp::spawn_with::<S>(set, &overrides).await;

    let basic = app.get("/v1/health").await;
    assert_eq!(basic.status().as_u16(), 200);
    let basic: Value = basic.json().await.expect("JSON");
    assert_eq!(basic["status"], "healthy");
    assert_eq!(basic["service"], S::KIND.name());

    let (status, body) = detailed(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    for check in ["database", "redis"] {
        assert_eq!(body["checks"][check]["status"], "healthy", "{body}");
        assert!(body["checks"][check]["response_time_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{body}");
    }

    redis.stop();
    let body = poll_until(Duration::from_secs(15), "503 naming redis", || async {
        let (status, body) = detailed(&app).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["redis"]["status"], "unhealthy", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "healthy", "{body}");
    assert_eq!(app.get("/v1/health").await.status().as_u16(), 200, "liveness ignores dependencies");

    redis.restart();
    let body = poll_until(Duration::from_secs(15), "200 after redis returned", || async {
        let (status, body) = detailed(&app).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body["checks"]["redis"]["status"], "healthy", "{body}");
    drop(app);

    // A database nobody listens on: 503 naming the database, quickly (bounded by the pool timeouts).
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let url = format!("postgres://billing@127.0.0.1:{}/nowhere", closed_port.expect("free port"));
    let mut overrides = vec![(crate::app::database_url_key(S::KIND), url)];
    overrides.extend(settings.iter().cloned());
    let app = TestApp::spawn_with::<S>(set, &overrides).await;
    let started = std::time::Instant::now();
    let (status, body) = detailed(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "unhealthy", "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "healthy", "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "an unreachable database must not hang the health check");
    let text = body.to_string();
    assert!(!text.contains("refused") && !text.contains("nowhere"), "health leaks internals: {text}");
}

/// Checks an OpenAPI document's own consistency: every operation has an `operationId` used once, every `$ref`
/// points at a schema the document defines, and every `(method, path)` of `routes` is documented.
pub fn assert_openapi_is_consistent(doc: &Value, routes: &[(&str, &str)]) {
    let mut seen = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Some(id) = op["operationId"].as_str() else { panic!("{method} {path} has no operationId") };
            assert!(seen.insert(id.to_owned()), "operationId {id} is used twice ({method} {path})");
        }
    }
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} points at nothing");
    }
    for (method, path) in routes {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
}
