//! Fixed-window counters in Redis for the routes that need guarding (registration, login attempts). Each event
//! is counted atomically before the work it guards, so a burst cannot slip past a check made before any of it
//! was counted.

use std::time::Duration;

use billing_infra::Redis;

/// A limit: at most `max` events per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

/// Counters shared by every replica (they live in Redis).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    redis: Redis,
}

// INCR the counter, start its window on the first hit, and return the count and the seconds left.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

impl RateLimiter {
    /// Counters under the process's Redis prefix.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Counts one event under `key`; `Err(retry_after_secs)` when the limit is now exceeded.
    pub async fn hit(&self, key: &str, limit: Limit) -> Result<Result<(), u64>, redis::RedisError> {
        let mut conn = self.redis.conn();
        let (count, ttl_ms): (u64, i64) = redis::Script::new(HIT)
            .key(self.redis.key(&format!("rl:{key}")))
            .arg(u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        Ok(if count > limit.max { Err(retry_after(ttl_ms)) } else { Ok(()) })
    }

    /// Forgets `key` (a successful login clears its failures).
    pub async fn reset(&self, key: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.redis.conn();
        redis::cmd("DEL").arg(self.redis.key(&format!("rl:{key}"))).exec_async(&mut conn).await
    }
}

fn retry_after(ttl_ms: i64) -> u64 {
    u64::try_from(ttl_ms.max(1000)).unwrap_or(1000).div_ceil(1000)
}
