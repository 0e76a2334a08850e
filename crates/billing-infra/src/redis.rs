//! The Redis connection: lazy, multiplexed, reconnecting by itself, with timeouts and a key prefix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billing_config::RedisSettings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A cheap-to-clone handle on Redis for one process.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: Arc<str>,
    response_timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Redis {
    /// Creates the handle without connecting: the service boots while Redis is down and
    /// connects (and later reconnects) on first use.
    pub fn connect_lazy(settings: &RedisSettings) -> redis::RedisResult<Self> {
        Self::connect_lazy_to(
            settings.url.expose(),
            &settings.key_prefix,
            settings.connect_timeout,
            settings.response_timeout,
        )
    }

    /// As [`Redis::connect_lazy`], with explicit values (tests use their own URL and prefix).
    pub fn connect_lazy_to(
        url: &str,
        prefix: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            // Few, short reconnect attempts per failure: callers see an error quickly while
            // Redis is down, and the next call starts a new attempt.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self { client, manager, prefix: Arc::from(prefix), response_timeout })
    }

    /// A connection to run commands on (multiplexed: cloning is cheap, no pool needed).
    pub fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// A connection of its own, for blocking commands (`BLPOP`) that would stall the shared multiplexed one.
    pub async fn dedicated(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        self.client.get_multiplexed_async_connection().await
    }

    /// The process's key prefix followed by `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The prefix every key of this process starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `PING`, bounded by the response timeout; returns the round-trip time.
    pub async fn ping(&self) -> redis::RedisResult<Duration> {
        let started = Instant::now();
        let mut conn = self.conn();
        let reply = tokio::time::timeout(self.response_timeout, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "PING timed out")))??;
        if reply != "PONG" {
            return Err(redis::RedisError::from((redis::ErrorKind::Client, "unexpected PING reply")));
        }
        Ok(started.elapsed())
    }
}
