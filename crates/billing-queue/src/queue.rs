//! One queue: its keys, its policy, and the operations on it.

use std::time::Duration;

use billing_infra::Redis;
use chrono::Utc;
use redis::Script;
use serde::Serialize;

use crate::scripts;
use crate::{Envelope, NewJob, Policy, QueueName};

/// What can go wrong talking to a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("job {id} has an unreadable envelope: {reason}")]
    Corrupt { id: String, reason: String },
}

/// A job handed to one worker until it acks, nacks, or its visibility timeout passes.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub envelope: Envelope,
}

/// What a nack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// Delivered again after this delay.
    Retry(Duration),
    /// Moved to the failed list (last attempt, or a permanent error).
    Failed,
    /// The job was no longer in hand (reaped and given to another worker).
    NotHeld,
}

/// Counts of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub pending: u64,
    pub processing: u64,
    pub delayed: u64,
    pub failed: u64,
}

/// A job in the failed list, with why it failed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedJob {
    pub envelope: Option<Envelope>,
    pub id: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
struct Keys {
    main: String,
    processing: String,
    delayed: String,
    failed: String,
    jobs: String,
    attempts: String,
    errors: String,
    wake: String,
    counters: String,
}

/// One queue on one Redis.
#[derive(Debug, Clone)]
pub struct Queue {
    redis: Redis,
    name: String,
    policy: Policy,
    keys: Keys,
}

const BATCH: u32 = 500;

impl Queue {
    /// The queue `name` with its default policy.
    pub fn new(redis: Redis, name: QueueName) -> Self {
        Self::with_policy(redis, name.as_str(), name.policy())
    }

    /// A queue with an explicit name and policy (tests use short delays).
    pub fn with_policy(redis: Redis, name: &str, policy: Policy) -> Self {
        // The `{name}` hash tag keeps every key of the queue in one Redis Cluster slot.
        let key = |part: &str| redis.key(&format!("{{{name}}}:{part}"));
        let keys = Keys {
            main: key("main"),
            processing: key("processing"),
            delayed: key("delayed"),
            failed: key("failed"),
            jobs: key("jobs"),
            attempts: key("attempts"),
            errors: key("errors"),
            wake: key("wake"),
            counters: key("counters"),
        };
        Self { redis, name: name.to_owned(), policy, keys }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis the queue lives on.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The queue's policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Stores and enqueues `job` (after `delay`, if any). Returns false when a job with its id already exists.
    pub async fn enqueue(&self, job: NewJob, delay: Option<Duration>) -> Result<bool, QueueError> {
        let envelope = Envelope {
            id: job.id,
            action: job.action,
            correlation_id: job.correlation_id,
            idempotency_key: job.idempotency_key,
            created_at: Utc::now(),
            attempts: 0,
            max_attempts: self.policy.max_attempts,
            payload: job.payload,
        };
        let json = serde_json::to_string(&envelope)
            .map_err(|e| QueueError::Corrupt { id: job.id.to_string(), reason: e.to_string() })?;
        let delay_ms = delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0);
        let stored: i64 = Script::new(scripts::ENQUEUE)
            .key(&self.keys.main)
            .key(&self.keys.delayed)
            .key(&self.keys.jobs)
            .key(&self.keys.wake)
            .arg(job.id.to_string())
            .arg(json)
            .arg(delay_ms)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(stored == 1)
    }

    /// Claims the oldest ready job, if any; its attempt is counted and its visibility deadline set.
    pub async fn claim(&self) -> Result<Option<Claimed>, QueueError> {
        Ok(self.claim_batch(1).await?.pop())
    }

    /// Claims up to `max` ready jobs, oldest first, in one round trip.
    pub async fn claim_batch(&self, max: usize) -> Result<Vec<Claimed>, QueueError> {
        let reply: Vec<redis::Value> = Script::new(scripts::CLAIM)
            .key(&self.keys.main)
            .key(&self.keys.processing)
            .key(&self.keys.jobs)
            .key(&self.keys.attempts)
            .arg(u64::try_from(self.policy.visibility_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg(max.max(1))
            .invoke_async(&mut self.redis.conn())
            .await?;
        let mut claimed = Vec::with_capacity(reply.len() / 3);
        let corrupt = |e: redis::ParsingError| QueueError::Corrupt { id: "?".to_owned(), reason: e.to_string() };
        for triple in reply.chunks_exact(3) {
            let id: String = redis::from_redis_value(triple[0].clone()).map_err(corrupt)?;
            let json: String = redis::from_redis_value(triple[1].clone()).map_err(corrupt)?;
            let attempts: u32 = redis::from_redis_value(triple[2].clone()).map_err(corrupt)?;
            let mut envelope: Envelope = serde_json::from_str(&json)
                .map_err(|e| QueueError::Corrupt { id: id.clone(), reason: e.to_string() })?;
            envelope.attempts = attempts;
            claimed.push(Claimed { envelope });
        }
        Ok(claimed)
    }

    /// Finishes a job. False when this claim no longer holds it (it was reaped and claimed again).
    pub async fn ack(&self, claimed: &Claimed) -> Result<bool, QueueError> {
        let done: i64 = Script::new(scripts::ACK)
            .key(&self.keys.processing)
            .key(&self.keys.jobs)
            .key(&self.keys.attempts)
            .key(&self.keys.errors)
            .key(&self.keys.counters)
            .arg(claimed.envelope.id.to_string())
            .arg(claimed.envelope.attempts)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(done == 1)
    }

    /// Gives back a claimed job that never started (the worker is stopping): it is next in line again and the
    /// attempt is not counted. False when this claim no longer holds it.
    pub async fn release(&self, claimed: &Claimed) -> Result<bool, QueueError> {
        let done: i64 = Script::new(scripts::RELEASE)
            .key(&self.keys.processing)
            .key(&self.keys.main)
            .key(&self.keys.attempts)
            .key(&self.keys.wake)
            .arg(claimed.envelope.id.to_string())
            .arg(claimed.envelope.attempts)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(done == 1)
    }

    /// Gives a job back after a failure: retried after the policy's backoff with jitter, or moved to the failed
    /// list after the last attempt, or at once when `permanent`.
    pub async fn nack(&self, claimed: &Claimed, error: &str, permanent: bool) -> Result<NackOutcome, QueueError> {
        let delay = self.policy.delay_with_jitter(claimed.envelope.attempts);
        let outcome: i64 = Script::new(scripts::NACK)
            .key(&self.keys.processing)
            .key(&self.keys.delayed)
            .key(&self.keys.failed)
            .key(&self.keys.attempts)
            .key(&self.keys.errors)
            .key(&self.keys.counters)
            .arg(claimed.envelope.id.to_string())
            .arg(error)
            .arg(if permanent { "1" } else { "0" })
            .arg(claimed.envelope.max_attempts.min(self.policy.max_attempts))
            .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            .arg(claimed.envelope.attempts)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(match outcome {
            -1 => NackOutcome::NotHeld,
            0 => NackOutcome::Failed,
            ms => NackOutcome::Retry(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    /// Returns claimed jobs whose visibility deadline passed (their worker died or hung): to the front of the
    /// queue, or to the failed list when their attempts are spent. Returns `(returned, failed)`.
    pub async fn reap(&self) -> Result<(u64, u64), QueueError> {
        Ok(Script::new(scripts::REAP)
            .key(&self.keys.processing)
            .key(&self.keys.main)
            .key(&self.keys.failed)
            .key(&self.keys.attempts)
            .key(&self.keys.errors)
            .key(&self.keys.wake)
            .key(&self.keys.counters)
            .arg(self.policy.max_attempts)
            .arg(BATCH)
            .invoke_async(&mut self.redis.conn())
            .await?)
    }

    /// Moves delayed jobs that are due to the queue. Returns how many.
    pub async fn promote(&self) -> Result<u64, QueueError> {
        Ok(Script::new(scripts::PROMOTE)
            .key(&self.keys.delayed)
            .key(&self.keys.main)
            .key(&self.keys.wake)
            .arg(BATCH)
            .invoke_async(&mut self.redis.conn())
            .await?)
    }

    /// Puts a failed job back on the queue with its attempts reset. False when it is not in the failed list.
    pub async fn requeue_failed(&self, id: &str) -> Result<bool, QueueError> {
        let done: i64 = Script::new(scripts::REQUEUE)
            .key(&self.keys.failed)
            .key(&self.keys.main)
            .key(&self.keys.attempts)
            .key(&self.keys.errors)
            .key(&self.keys.wake)
            .arg(id)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(done == 1)
    }

    /// Deletes a failed job. False when it is not in the failed list.
    pub async fn drop_failed(&self, id: &str) -> Result<bool, QueueError> {
        let done: i64 = Script::new(scripts::DROP_FAILED)
            .key(&self.keys.failed)
            .key(&self.keys.jobs)
            .key(&self.keys.attempts)
            .key(&self.keys.errors)
            .arg(id)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(done == 1)
    }

    /// Pending, processing, delayed and failed counts.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let (pending, processing, delayed, failed): (u64, u64, u64, u64) = redis::pipe()
            .llen(&self.keys.main)
            .zcard(&self.keys.processing)
            .zcard(&self.keys.delayed)
            .llen(&self.keys.failed)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(QueueStats { pending, processing, delayed, failed })
    }

    /// Job outcomes since the queue was created, across every worker: succeeded, retried, failed, reaped.
    pub async fn outcomes(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let mut counts: Vec<(String, u64)> =
            redis::cmd("HGETALL").arg(&self.keys.counters).query_async(&mut self.redis.conn()).await?;
        counts.sort();
        Ok(counts)
    }

    /// A page of the failed list, newest first, with each job's last error.
    pub async fn failed_page(&self, offset: usize, limit: usize) -> Result<Vec<FailedJob>, QueueError> {
        let stop = isize::try_from(offset + limit.max(1) - 1).unwrap_or(isize::MAX);
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(&self.keys.failed)
            .arg(offset)
            .arg(stop)
            .query_async(&mut self.redis.conn())
            .await?;
        let mut page = Vec::with_capacity(ids.len());
        for id in ids {
            let (json, attempts, error): (Option<String>, Option<u32>, Option<String>) = redis::pipe()
                .hget(&self.keys.jobs, &id)
                .hget(&self.keys.attempts, &id)
                .hget(&self.keys.errors, &id)
                .query_async(&mut self.redis.conn())
                .await?;
            let envelope = json.and_then(|j| serde_json::from_str::<Envelope>(&j).ok()).map(|mut e| {
                e.attempts = attempts.unwrap_or(0);
                e
            });
            page.push(FailedJob { envelope, id, attempts: attempts.unwrap_or(0), last_error: error });
        }
        Ok(page)
    }

    /// Waits until work may be ready (an enqueue, a promotion or a reap signalled it) or `timeout` passes, on a
    /// connection of its own: an idle worker costs one blocking call per timeout, never a busy loop.
    pub async fn wait_for_work(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        timeout: Duration,
    ) -> Result<bool, QueueError> {
        let woke: Option<(String, String)> =
            redis::cmd("BLPOP").arg(&self.keys.wake).arg(timeout.as_secs_f64().max(0.01)).query_async(conn).await?;
        Ok(woke.is_some())
    }
}
