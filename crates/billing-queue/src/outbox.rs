//! The transactional outbox: a job born from a database change is written as an `outbox` row in the same
//! transaction; the relay pushes unsent rows to their queue in order and marks them sent. If Redis is down the
//! rows wait; if the relay crashes between the push and the mark, the push is repeated and the queue keeps one
//! job (enqueue deduplicates by job id).

use billing_infra::CachedDsl;
use std::collections::HashMap;
use std::time::Duration;

use billing_infra::{DbError, DbPool};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use crate::{NewJob, Queue};

diesel::table! {
    /// The `outbox` table every service database has.
    outbox (id) {
        id -> Int8,
        queue -> Text,
        job_id -> Uuid,
        action -> Text,
        idempotency_key -> Text,
        correlation_id -> Nullable<Text>,
        payload -> Jsonb,
        delay_ms -> Int8,
        sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
struct NewRow<'a> {
    queue: &'a str,
    job_id: Uuid,
    action: &'a str,
    idempotency_key: &'a str,
    correlation_id: Option<&'a str>,
    payload: &'a Value,
    delay_ms: i64,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = outbox, check_for_backend(diesel::pg::Pg))]
struct Row {
    id: i64,
    queue: String,
    job_id: Uuid,
    action: String,
    idempotency_key: String,
    correlation_id: Option<String>,
    payload: Value,
    delay_ms: i64,
    #[expect(dead_code, reason = "selected for completeness; sent rows are never read back")]
    sent_at: Option<DateTime<Utc>>,
    #[expect(dead_code, reason = "selected for completeness")]
    created_at: DateTime<Utc>,
}

/// Writes `job` for `queue` in the caller's transaction (call it inside the transaction that made the change);
/// returns the row id for [`send_now`].
pub async fn push(
    conn: &mut AsyncPgConnection,
    queue: &str,
    job: &NewJob,
    delay: Option<Duration>,
) -> Result<i64, DbError> {
    let row = NewRow {
        queue,
        job_id: job.id,
        action: &job.action,
        idempotency_key: &job.idempotency_key,
        correlation_id: job.correlation_id.as_deref(),
        payload: &job.payload,
        delay_ms: delay.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0),
    };
    Ok(diesel::insert_into(outbox::table).values(&row).returning(outbox::id).cached().get_result(conn).await?)
}

/// After the transaction that wrote row `id` committed: pushes `job` at once and marks the row sent, so the job
/// does not wait for the relay's next tick. Any failure leaves the row to the relay; a push racing the relay is
/// absorbed by enqueue's deduplication (and, after an ack, by the handler's idempotency).
pub async fn send_now(pool: &DbPool, queue: &Queue, id: i64, job: NewJob) {
    if let Err(err) = queue.enqueue(job, None).await {
        tracing::debug!(error = %err, "immediate push failed; the outbox relay will send the job");
        return;
    }
    let marked = match pool.get().await {
        Ok(mut conn) => diesel::update(outbox::table.find(id).filter(outbox::sent_at.is_null()))
            .set(outbox::sent_at.eq(diesel::dsl::now))
            .cached()
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(err) = marked {
        tracing::debug!(error = %err, "could not mark an outbox row sent; the relay will push it again (deduplicated)");
    }
}

/// Why a relay pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("pushing to {queue}: {source}")]
    Queue { queue: String, source: crate::QueueError },
    #[error("no queue named {0} in this process")]
    UnknownQueue(String),
}

impl From<diesel::result::Error> for RelayError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Moves up to `batch` unsent rows, oldest first, to their queues and marks them sent; returns how many.
/// `FOR UPDATE SKIP LOCKED` lets several relays run without sending a row twice at once.
pub async fn relay_once(pool: &DbPool, queues: &HashMap<String, Queue>, batch: i64) -> Result<usize, RelayError> {
    let mut conn = pool.get().await.map_err(DbError::from)?;
    conn.transaction::<usize, RelayError, _>(async move |conn| {
        let rows: Vec<Row> = outbox::table
            .filter(outbox::sent_at.is_null())
            .order(outbox::id.asc())
            .limit(batch)
            .for_update()
            .skip_locked()
            .select(Row::as_select())
            .load(conn)
            .await?;
        let mut sent = Vec::with_capacity(rows.len());
        for row in rows {
            let queue = queues.get(&row.queue).ok_or_else(|| RelayError::UnknownQueue(row.queue.clone()))?;
            let job = NewJob {
                id: row.job_id,
                action: row.action,
                correlation_id: row.correlation_id,
                idempotency_key: row.idempotency_key,
                payload: row.payload,
            };
            let delay = (row.delay_ms > 0).then(|| Duration::from_millis(u64::try_from(row.delay_ms).unwrap_or(0)));
            match queue.enqueue(job, delay).await {
                Ok(_) => sent.push(row.id),
                // Stop at the first failure so rows go out in order; the ones pushed so far are marked.
                Err(source) => {
                    if sent.is_empty() {
                        return Err(RelayError::Queue { queue: row.queue, source });
                    }
                    tracing::warn!(error = %source, "outbox relay paused: a queue is unreachable");
                    break;
                }
            }
        }
        if !sent.is_empty() {
            diesel::update(outbox::table.filter(outbox::id.eq_any(&sent)))
                .set(outbox::sent_at.eq(diesel::dsl::now))
                .cached()
                .execute(conn)
                .await?;
        }
        Ok(sent.len())
    })
    .await
}

/// Unsent rows (for health and tests).
pub async fn pending(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    Ok(outbox::table.filter(outbox::sent_at.is_null()).count().get_result(conn).await?)
}
