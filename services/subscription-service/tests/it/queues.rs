//! The subscription service's queues: the outbox relay, the admin routes, health, and the worker folding usage.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use billing_infra::Redis;
use billing_queue::outbox;
use billing_queue::{NewJob, Queue, QueueName};
use billing_runtime::Service;
use billing_testkit::{RedisServer, TestDb, poll_until};
use common::{Ctx, SET};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use reqwest::Method;
use serde_json::json;
use subscription_service::SubscriptionService;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_row_written_while_redis_is_down_is_delivered_once_it_is_up() {
    let db = TestDb::new(SET).await;
    let mut server = RedisServer::start();
    let redis = Redis::connect_lazy_to(&server.url(), "", Duration::from_millis(300), Duration::from_millis(500))
        .unwrap_or_else(|e| panic!("{e}"));
    let queue = Queue::new(redis.clone(), QueueName::SubPlanChange);
    let queues: HashMap<String, Queue> = [(queue.name().to_owned(), queue.clone())].into();
    let pool = billing_infra::db::build_pool_for_url(&db.url, 2, Duration::from_secs(2), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}"));

    server.stop();
    let job = NewJob::new("upgrade", "sub-1:upgrade", json!({"subscription_id": "sub-1"}));
    {
        let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap_or_else(|e| panic!("{e}"));
        outbox::push(&mut conn, queue.name(), &job, None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(outbox::relay_once(&pool, &queues, 100).await.is_err(), "Redis is down: the relay cannot deliver");
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outbox::pending(&mut conn).await.unwrap_or(0), 1, "the row waits");

    server.restart();
    let sent = poll_until(Duration::from_secs(10), "the relay to deliver", || async {
        outbox::relay_once(&pool, &queues, 100).await.ok().filter(|n| *n > 0)
    })
    .await;
    assert_eq!(sent, 1);
    assert_eq!(outbox::pending(&mut conn).await.unwrap_or(-1), 0);
    assert_eq!(outbox::relay_once(&pool, &queues, 100).await.unwrap_or(9), 0, "sent rows are not sent again");
    let claimed = queue.claim().await.ok().flatten().unwrap_or_else(|| panic!("the job is in the queue"));
    assert_eq!((claimed.envelope.id, claimed.envelope.idempotency_key.as_str()), (job.id, "sub-1:upgrade"));
    assert_eq!(queue.stats().await.map(|s| s.pending).unwrap_or(9), 0, "delivered once");
}

#[tokio::test]
async fn admins_see_queue_stats_and_requeue_or_drop_failed_jobs() {
    let ctx = Ctx::new().await;
    let queue = Queue::new(ctx.app.infra.redis.clone(), QueueName::SubPlanChange);
    let fail = |key: &'static str| {
        let queue = queue.clone();
        async move {
            queue.enqueue(NewJob::new("upgrade", key, json!({})), None).await.unwrap_or_else(|e| panic!("{e}"));
            let claimed = queue.claim().await.ok().flatten().unwrap_or_else(|| panic!("claim"));
            queue.nack(&claimed, "gateway said no", true).await.unwrap_or_else(|e| panic!("{e}"));
            claimed.envelope.id.to_string()
        }
    };
    let id = fail("k1").await;
    let user = ctx.user().await;
    assert_eq!(ctx.call(Method::GET, "/v1/admin/queues", Some(&user), None).await.status, 403);
    let res = ctx.call(Method::GET, "/v1/admin/queues", Some(&ctx.admin), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let names: Vec<&str> = res.data().as_array().into_iter().flatten().filter_map(|q| q["name"].as_str()).collect();
    assert_eq!(names, ["q:sub:payment_initiation", "q:sub:trial_payment", "q:sub:plan_change", "q:sub:usage_sync"]);
    let plan_change = &res.data()[2];
    assert_eq!(plan_change["stats"]["failed"], 1);
    assert_eq!(plan_change["failed_jobs"][0]["last_error"], "gateway said no");

    let path = format!("/v1/admin/queues/q:sub:plan_change/failed/{id}");
    let requeued = ctx.call(Method::POST, &format!("{path}/requeue"), Some(&ctx.admin), None).await;
    assert_eq!(requeued.status, 200, "{}", requeued.body);
    assert_eq!(queue.stats().await.map(|s| (s.pending, s.failed)).unwrap_or_default(), (1, 0));
    assert_eq!(ctx.call(Method::POST, &format!("{path}/requeue"), Some(&ctx.admin), None).await.status, 404);

    let second = fail("k2").await;
    let _ = queue.claim().await; // the requeued one, now in hand
    let dropped = ctx
        .call(Method::DELETE, &format!("/v1/admin/queues/q:sub:plan_change/failed/{second}"), Some(&ctx.admin), None)
        .await;
    assert_eq!(dropped.status, 200);
    assert_eq!(queue.stats().await.map(|s| s.failed).unwrap_or(9), 0);
    assert_eq!(ctx.call(Method::GET, "/v1/admin/queues/q:nope/failed/x", Some(&ctx.admin), None).await.status, 405);
    // Depths and outcomes are in /metrics.
    let metrics = ctx.app.get("/metrics").await.text().await.unwrap_or_default();
    assert!(metrics.contains("queue_depth{queue=\"q:sub:plan_change\",state=\"processing\"} 1"), "{metrics}");
    assert!(metrics.contains("queue_jobs_total{queue=\"q:sub:plan_change\",outcome=\"failed\"} 2"), "{metrics}");
    let unknown = ctx.call(Method::DELETE, "/v1/admin/queues/q:nope/failed/x", Some(&ctx.admin), None).await;
    assert_eq!((unknown.status, unknown.code()), (404, "queue_not_found"));
}

#[tokio::test]
async fn detailed_health_reports_every_queue() {
    let ctx = Ctx::new().await;
    let queue = Queue::new(ctx.app.infra.redis.clone(), QueueName::SubUsageSync);
    queue.enqueue(NewJob::new("fold", "x", json!({})), None).await.unwrap_or_else(|e| panic!("{e}"));
    let health: serde_json::Value = ctx.app.get("/v1/health/detailed").await.json().await.unwrap_or_default();
    assert_eq!(health["checks"]["queues"]["status"], "healthy", "{health}");
    let details = &health["checks"]["queues"]["details"];
    assert_eq!(details["q:sub:usage_sync"], json!({"pending": 1, "processing": 0, "delayed": 0, "failed": 0}));
    assert!(details["q:sub:payment_initiation"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_folds_usage_through_the_usage_sync_queue() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": 1}))).await;
    for _ in 0..5 {
        let res =
            ctx.call(Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls"}))).await;
        assert_eq!(res.status, 200);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(SubscriptionService::worker(
        ctx.app.infra.clone(),
        Box::pin(async move {
            let _ = stopped.await;
        }),
    ));
    let url = ctx.app.db.url.clone();
    #[derive(diesel::QueryableByName)]
    struct Used {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    poll_until(Duration::from_secs(20), "the worker to fold the usage into PostgreSQL", || async {
        use diesel_async::RunQueryDsl;
        let mut conn = AsyncPgConnection::establish(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let used = diesel::sql_query("SELECT COALESCE(SUM(used), 0)::bigint AS n FROM usage_counters")
            .get_result::<Used>(&mut conn)
            .await;
        (used.map(|u| u.n).unwrap_or(0) == 5).then_some(())
    })
    .await;
    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(35), worker).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "the worker stops cleanly on shutdown: {finished:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_that_leaves_a_failed_job_behind_fails_when_its_app_is_dropped() {
    let ctx = Ctx::new().await;
    let queue = Queue::new(ctx.app.infra.redis.clone(), QueueName::SubPlanChange);
    queue.enqueue(NewJob::new("proration", "lost", json!({"invoice_id": "none"})), None).await.unwrap_or_default();
    let claimed = queue.claim().await.ok().flatten().unwrap_or_else(|| panic!("no job"));
    queue.nack(&claimed, "gave up", true).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ctx.app.failed_jobs(), ["q:sub:plan_change: proration (gave up)"]);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ctx)));
    let message = dropped.err().and_then(|p| p.downcast::<String>().ok()).map(|m| *m).unwrap_or_default();
    assert!(message.contains("failed jobs left behind"), "the drop check said: {message:?}");
}
