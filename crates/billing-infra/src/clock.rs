//! The time every decision is made at. Services take a `Clock` instead of calling `Utc::now()`, so a test
//! clock can replace it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Catches up with a clock shared between processes (a moved test clock) before a time-sensitive check is
    /// trusted to have failed; the machine's clock has nothing to catch up with.
    fn resync(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// A clock that tests can move forward: the machine's time plus an offset shared through Redis, so every process
/// of a test environment (services and workers) agrees on "now". The offset is cached and refreshed in the
/// background, so reading the clock never waits on Redis.
#[derive(Debug, Clone)]
pub struct TestClock {
    redis: crate::Redis,
    offset_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl TestClock {
    /// A clock reading its offset from `redis` (key `clock:offset_ms` under the process prefix).
    pub fn new(redis: crate::Redis) -> Self {
        let clock = Self { redis, offset_ms: Arc::new(std::sync::atomic::AtomicI64::new(0)) };
        let refresher = clock.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
            loop {
                tick.tick().await;
                let _ = refresher.refresh().await;
            }
        });
        clock
    }

    /// Reads the shared offset now.
    pub async fn refresh(&self) -> redis::RedisResult<i64> {
        let mut conn = self.redis.conn();
        let offset: Option<i64> =
            redis::cmd("GET").arg(self.redis.key("clock:offset_ms")).query_async(&mut conn).await?;
        let offset = offset.unwrap_or(0);
        self.offset_ms.store(offset, std::sync::atomic::Ordering::SeqCst);
        Ok(offset)
    }

    /// Moves the clock forward by `ms` for every process; returns the new offset.
    pub async fn advance(&self, ms: i64) -> redis::RedisResult<i64> {
        let mut conn = self.redis.conn();
        let offset: i64 =
            redis::cmd("INCRBY").arg(self.redis.key("clock:offset_ms")).arg(ms).query_async(&mut conn).await?;
        self.offset_ms.store(offset, std::sync::atomic::Ordering::SeqCst);
        Ok(offset)
    }

    /// How far ahead of the machine's clock this clock is, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms())
    }

    fn resync(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {
            let _ = self.refresh().await;
        })
    }
}
