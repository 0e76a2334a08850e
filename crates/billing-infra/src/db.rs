//! The PostgreSQL pool and the error type of repository functions.

use std::time::{Duration, Instant};

use billing_config::DatabaseSettings;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Integer;
use diesel::{IntoSql, select};
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

mod cached;
pub use cached::{Cached, CachedDsl};

/// The pool every request and job borrows its connection from.
pub type DbPool = Pool<AsyncPgConnection>;
/// A pooled connection, returned to the pool on drop.
pub type DbConn = Object<AsyncPgConnection>;

/// What a repository function can fail with; services map it to their own errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    #[error("check constraint {constraint} violated")]
    CheckViolation { constraint: String },
    #[error("concurrent update conflict")]
    Conflict,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<DieselError> for DbError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Self::UniqueViolation { constraint: info.constraint_name().unwrap_or_default().to_owned() }
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                Self::CheckViolation { constraint: info.constraint_name().unwrap_or_default().to_owned() }
            }
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Self::Conflict,
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            DieselError::DatabaseError(_, info) if is_lost_connection(info.message()) => {
                Self::Unavailable(info.message().to_owned())
            }
            other if is_lost_connection(&other.to_string()) => Self::Unavailable(other.to_string()),
            other => Self::Other(other.to_string()),
        }
    }
}

/// The server went away under a connection (a restart, a failover, a network cut): the request may succeed in a
/// moment, so it is a 503, not a 500. PostgreSQL's own words for it (57P01–57P03, 08xxx) and the driver's.
fn is_lost_connection(message: &str) -> bool {
    const SIGNS: [&str; 9] = [
        "terminating connection",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "connection closed",
        "connection reset",
        "broken pipe",
        "server closed the connection",
        "unexpected eof",
    ];
    let message = message.to_ascii_lowercase();
    SIGNS.iter().any(|sign| message.contains(sign))
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// Builds the pool; no connection is opened until the first request needs one.
pub fn build_pool(settings: &DatabaseSettings) -> Result<DbPool, DbError> {
    build_pool_for_url(
        settings.url.expose(),
        settings.pool_max_size,
        settings.acquire_timeout,
        settings.connect_timeout,
    )
}

/// Builds a pool for an explicit URL (tests point it at their own database).
pub fn build_pool_for_url(
    url: &str,
    max_size: usize,
    acquire_timeout: Duration,
    connect_timeout: Duration,
) -> Result<DbPool, DbError> {
    // A connection comes out of the pool without a `SELECT 1` first (the default "verified" recycling): that
    // probe was a round trip and a transaction of its own on every checkout, half the statements of a one-query
    // read. A connection whose server went away is still never handed out: its socket is closed (checked on
    // every checkout), and one that fails under a query is an `Unavailable` 503, not a 500.
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Other(e.to_string()))
}

/// Borrows a connection and runs `SELECT 1`, returning how long the round trip took.
pub async fn ping(pool: &DbPool) -> Result<Duration, DbError> {
    let started = Instant::now();
    let mut conn = pool.get().await?;
    select(1.into_sql::<Integer>()).get_result::<i32>(&mut conn).await?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_going_away_is_unavailable_not_a_bug() {
        for message in [
            "terminating connection due to administrator command",
            "FATAL: the database system is shutting down",
            "Connection closed",
            "Connection reset by peer (os error 104)",
        ] {
            assert!(is_lost_connection(message), "{message}");
        }
        assert!(!is_lost_connection("relation \"nope\" does not exist"));
        let err = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned()),
        );
        assert!(matches!(DbError::from(err), DbError::Unavailable(_)));
    }
}
