//! Embedded migrations, run through diesel's synchronous harness on the blocking pool.

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl, sql_query};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use url::Url;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

// One advisory lock id for all migrations, so concurrent `migrate` runs of several replicas queue up.
const MIGRATION_LOCK: i64 = 0x0062_696c_6c69_6e67; // "billing" in ASCII

/// Applies every pending migration; returns the versions applied.
pub async fn run_pending(url: &str, migrations: EmbeddedMigrations) -> Result<Vec<String>, MigrateError> {
    with_sync_conn(url, move |conn| {
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .map_err(|e| MigrateError::Migration(e.to_string()))?;
        let result = conn
            .run_pending_migrations(migrations)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| MigrateError::Migration(e.to_string()));
        // The lock dies with the session anyway; releasing it early lets waiters go on.
        let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        result
    })
    .await
}

/// Reverts every applied migration, newest first; returns the versions reverted.
pub async fn revert_all(url: &str, migrations: EmbeddedMigrations) -> Result<Vec<String>, MigrateError> {
    with_sync_conn(url, move |conn| {
        conn.revert_all_migrations(migrations)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| MigrateError::Migration(e.to_string()))
    })
    .await
}

/// Creates the database named in `url` when it does not exist yet (connecting to `postgres` on the same server).
/// Returns true when it was created.
pub async fn ensure_database(url: &str) -> Result<bool, MigrateError> {
    let mut parsed = Url::parse(url).map_err(|e| MigrateError::Url(e.to_string()))?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(MigrateError::Url(format!("database name {name:?} must be lower-case letters, digits and _")));
    }
    parsed.set_path("/postgres");
    let admin_url = parsed.to_string();
    with_sync_conn(&admin_url, move |conn| {
        #[derive(QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        let found = sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result::<Exists>(conn)
            .map_err(|e| MigrateError::Migration(e.to_string()))?;
        if found.exists {
            return Ok(false);
        }
        match conn.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
            Ok(()) => Ok(true),
            // Another process created it between our check and our CREATE.
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
                Ok(false)
            }
            Err(e) if e.to_string().contains("already exists") => Ok(false),
            Err(e) => Err(MigrateError::Migration(format!("CREATE DATABASE {name}: {e}"))),
        }
    })
    .await
}

async fn with_sync_conn<T: Send + 'static>(
    url: &str,
    work: impl FnOnce(&mut SyncConn) -> Result<T, MigrateError> + Send + 'static,
) -> Result<T, MigrateError> {
    let url = url.to_owned();
    // The wrapper blocks on the async connection, so it must not run on a runtime worker thread.
    tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::establish(&url).map_err(|e| MigrateError::Connect(e.to_string()))?;
        work(&mut conn)
    })
    .await
    .map_err(|e| MigrateError::Migration(format!("migration task failed: {e}")))?
}
