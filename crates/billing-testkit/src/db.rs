//! A database per test, cloned from a template migrated once.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl, sql_query};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::EmbeddedMigrations;
use sha2::{Digest, Sha256};

use billing_config::ServiceKind;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// A service's migrations: embedded (to run) and on disk (to hash into the template's name).
#[derive(Clone, Copy)]
pub struct MigrationSet {
    pub service: ServiceKind,
    /// Returns the service's `embed_migrations!` constant (which is not `Clone` itself).
    pub embedded: fn() -> EmbeddedMigrations,
}

impl MigrationSet {
    /// The directory under `migrations/` that holds the service's migrations.
    pub fn dir(&self) -> &'static str {
        match self.service {
            ServiceKind::Subscription => "subscription",
            ServiceKind::Payment => "payment",
        }
    }
}

/// A database of its own for one test, dropped with the value.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    /// Clones the migrated template of `set` into a new database.
    pub async fn new(set: MigrationSet) -> Self {
        let settings = crate::test_settings(set.service, &[]);
        let server_url = settings.database.url.expose().clone();
        let admin_url = with_database(&server_url, "postgres");
        let template = format!("tpl_{}_{}", set.dir(), migrations_hash(set.dir()));
        let embedded = (set.embedded)();
        let name = format!("t_{}_{}", set.dir(), uuid::Uuid::new_v4().simple());
        let url = with_database(&server_url, &name);
        let (admin, tpl, db, template_url) = (
            admin_url.clone(),
            template.clone(),
            name.clone(),
            with_database(&server_url, &format!("{template}_build")),
        );
        tokio::task::spawn_blocking(move || {
            let mut conn = SyncConn::establish(&admin).unwrap_or_else(|e| {
                panic!(
                    "cannot reach the test PostgreSQL ({e}); run the tests with `scripts/env-manager.sh -e test test`"
                )
            });
            ensure_template(&mut conn, &tpl, &template_url, embedded);
            retry(&format!("cloning {tpl}"), || {
                conn.batch_execute(&format!("CREATE DATABASE \"{db}\" TEMPLATE \"{tpl}\""))
            });
        })
        .await
        .expect("creating the test database");
        Self { name, url, admin_url }
    }

    /// A database with no migrations applied (for the migrations' own test).
    pub async fn empty(service: ServiceKind) -> Self {
        let settings = crate::test_settings(service, &[]);
        let server_url = settings.database.url.expose().clone();
        let admin_url = with_database(&server_url, "postgres");
        let name = format!("t_empty_{}", uuid::Uuid::new_v4().simple());
        let (admin, db) = (admin_url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn =
                SyncConn::establish(&admin).unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}"));
            conn.batch_execute(&format!("CREATE DATABASE \"{db}\"")).unwrap_or_else(|e| panic!("{e}"));
        })
        .await
        .expect("creating the test database");
        Self { url: with_database(&server_url, &name), name, admin_url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee, so the connection gets a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(mut conn) = SyncConn::establish(&admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        })
        .join();
    }
}

/// Builds the template once across every test process: an advisory lock serialises builders, and the
/// template appears under its final name only when fully migrated (built under `_build`, then renamed).
fn ensure_template(conn: &mut SyncConn, template: &str, build_url: &str, migrations: EmbeddedMigrations) {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let exists = |conn: &mut SyncConn| {
        sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(template)
            .get_result::<Found>(conn)
            .map(|f| f.found)
            .unwrap_or_else(|e| panic!("looking for {template}: {e}"))
    };
    if exists(conn) {
        return;
    }
    conn.batch_execute("SELECT pg_advisory_lock(727274)").unwrap_or_else(|e| panic!("{e}"));
    if !exists(conn) {
        let build = format!("{template}_build");
        // Separate statements: a multi-statement string is one implicit transaction, which these refuse.
        for sql in [format!("DROP DATABASE IF EXISTS \"{build}\" WITH (FORCE)"), format!("CREATE DATABASE \"{build}\"")]
        {
            conn.batch_execute(&sql).unwrap_or_else(|e| panic!("creating {build}: {e}"));
        }
        {
            use diesel_migrations::MigrationHarness;
            let mut tpl = SyncConn::establish(build_url).unwrap_or_else(|e| panic!("{e}"));
            tpl.run_pending_migrations(migrations).unwrap_or_else(|e| panic!("migrating {build}: {e}"));
        }
        retry(&format!("renaming {build}"), || {
            conn.batch_execute(&format!("ALTER DATABASE \"{build}\" RENAME TO \"{template}\""))
        });
    }
    conn.batch_execute("SELECT pg_advisory_unlock(727274)").unwrap_or_else(|e| panic!("{e}"));
}

/// PostgreSQL refuses to clone or rename a database while a session (even one just closed) is still on it.
fn retry(what: &str, mut op: impl FnMut() -> diesel::QueryResult<()>) {
    let mut attempt = 0;
    loop {
        match op() {
            Ok(()) => return,
            Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn migrations_hash(dir: &str) -> String {
    let root = crate::repo_root().join("migrations").join(dir);
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).unwrap_or_default());
    }
    hex::encode(&hasher.finalize()[..6])
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { collect(&path, out) } else { out.push(path) }
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    match url.rfind('/') {
        Some(pos) => {
            let rest = &url[pos + 1..];
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{}/{name}{query}", &url[..pos])
        }
        None => format!("{url}/{name}"),
    }
}
