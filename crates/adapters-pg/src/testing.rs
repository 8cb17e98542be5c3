//! Test support (feature `testing`): a fresh database per test, dropped afterwards, so tests never
//! share mutable state and can run in parallel.
//!
//! The admin database comes from `TEST_DATABASE_ADMIN_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres` (see `scripts/pg-test-cluster.sh`).

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use domain::ports::StoreError;

use crate::error::{from_connection, from_diesel};
use crate::migrations::{with_migration_connection, MIGRATIONS};
use crate::{run_migrations, PgStore, PoolSettings};

pub const ADMIN_URL_VARIABLE: &str = "TEST_DATABASE_ADMIN_URL";
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the test cluster's admin database is.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Pool settings for tests: room for the racing contract cases, and patient timeouts (a loaded
/// two-core CI machine is slow, not down).
pub fn test_pool_settings() -> PoolSettings {
    PoolSettings {
        max_size: 8,
        wait_timeout: Duration::from_secs(20),
        create_timeout: Duration::from_secs(10),
        recycle_timeout: Duration::from_secs(5),
    }
}

/// A uniquely named database on the test cluster, migrated, with a [`PgStore`] on it. Dropping it
/// drops the database (best effort, `WITH (FORCE)`).
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    store: Option<PgStore>,
}

impl TestDatabase {
    /// A fresh, fully migrated database.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the test cluster cannot be reached.
    pub async fn create() -> Result<TestDatabase, StoreError> {
        let mut database = Self::create_empty().await?;
        run_migrations(&database.url).await?;
        database.store = Some(PgStore::connect(&database.url, test_pool_settings()).await?);
        Ok(database)
    }

    /// A fresh database with no migration applied and no store: for migration tests.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the test cluster cannot be reached.
    pub async fn create_empty() -> Result<TestDatabase, StoreError> {
        let admin_url = admin_url();
        let name = format!("pgtest_{}", uuid::Uuid::new_v4().simple());
        let url = database_url(&admin_url, &name);
        let mut admin = connect_admin(&admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(from_diesel)?;
        Ok(TestDatabase {
            name,
            url,
            admin_url,
            store: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store on this database (a clone sharing one pool).
    ///
    /// # Panics
    /// If the database was made by [`Self::create_empty`], which has no store.
    #[allow(clippy::expect_used)]
    pub fn store(&self) -> PgStore {
        self.store
            .clone()
            .expect("TestDatabase::create_empty has no store: use TestDatabase::create")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Our pool's connections are closed by the FORCE below; drop the pool first anyway.
        self.store = None;
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // On a thread of its own with its own runtime: Drop may run inside a runtime (where
        // blocking on another one panics) or outside any (at the end of a sync test).
        let dropper = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return Err(StoreError::Internal(e.to_string())),
            };
            runtime.block_on(async {
                let mut admin = connect_admin(&admin_url).await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .map_err(from_diesel)
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread panicked",
                self.name
            ),
        }
    }
}

async fn connect_admin(admin_url: &str) -> Result<AsyncPgConnection, StoreError> {
    match tokio::time::timeout(
        ADMIN_CONNECT_TIMEOUT,
        AsyncPgConnection::establish(admin_url),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(from_connection(e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "the test cluster at {admin_url} did not answer within {ADMIN_CONNECT_TIMEOUT:?}; \
             start one with scripts/pg-test-cluster.sh"
        ))),
    }
}

/// `admin_url` with its database name replaced by `name` (query parameters kept).
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let without_db = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{without_db}/{name}?{query}"),
        None => format!("{without_db}/{name}"),
    }
}

/// The versions of the embedded migrations, oldest first.
///
/// # Errors
/// [`StoreError::Internal`] if the embedded migrations cannot be read.
pub fn embedded_migration_versions() -> Result<Vec<String>, StoreError> {
    crate::migrations::embedded_versions()
}

/// Applies the next pending migration; its version, or `None` if none was pending.
///
/// # Errors
/// As [`run_migrations`].
pub async fn migrate_up_one(database_url: &str) -> Result<Option<String>, StoreError> {
    with_migration_connection(database_url, |conn| {
        let pending = conn.has_pending_migration(MIGRATIONS).map_err(internal)?;
        if !pending {
            return Ok(None);
        }
        conn.run_next_migration(MIGRATIONS)
            .map(|version| Some(version.to_string()))
            .map_err(internal)
    })
    .await
}

/// Reverts the last applied migration and answers its version.
///
/// # Errors
/// As [`run_migrations`]; `Internal` if nothing is applied.
pub async fn migrate_down_one(database_url: &str) -> Result<String, StoreError> {
    with_migration_connection(database_url, |conn| {
        conn.revert_last_migration(MIGRATIONS)
            .map(|version| version.to_string())
            .map_err(internal)
    })
    .await
}

/// Reverts every applied migration, newest first.
///
/// # Errors
/// As [`run_migrations`].
pub async fn migrate_down_all(database_url: &str) -> Result<(), StoreError> {
    with_migration_connection(database_url, |conn| {
        conn.revert_all_migrations(MIGRATIONS)
            .map(|_| ())
            .map_err(internal)
    })
    .await
}

/// A description of the database's schema (tables, columns, constraints, indexes, triggers and
/// functions of `public`), one line per object, sorted: two schemas are equal iff these are.
///
/// # Errors
/// `Unavailable` if the database cannot be reached.
pub async fn schema_fingerprint(database_url: &str) -> Result<Vec<String>, StoreError> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(from_connection)?;
    let lines: Vec<Line> = diesel::sql_query(SCHEMA_FINGERPRINT)
        .load(&mut conn)
        .await
        .map_err(from_diesel)?;
    let mut lines: Vec<String> = lines.into_iter().map(|l| l.line).collect();
    lines.sort();
    Ok(lines)
}

/// Holds PostgreSQL's migration advisory lock for `hold`, on a connection of its own: lets a test
/// check that `run_migrations` waits for it.
///
/// # Errors
/// `Unavailable` if the database cannot be reached.
pub async fn hold_migration_lock(database_url: &str, hold: Duration) -> Result<(), StoreError> {
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(from_connection)?;
    let key = crate::migrations::ADVISORY_LOCK_KEY;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(key)
        .execute(&mut conn)
        .await
        .map_err(from_diesel)?;
    tokio::time::sleep(hold).await;
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(key)
        .execute(&mut conn)
        .await
        .map_err(from_diesel)?;
    Ok(())
}

fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(error.to_string())
}

const SCHEMA_FINGERPRINT: &str = r#"
SELECT 'column ' || c.table_name || '.' || c.column_name || ' ' || c.data_type || ' '
       || c.is_nullable || ' ' || coalesce(c.column_default, '') AS line
  FROM information_schema.columns c
 WHERE c.table_schema = 'public' AND c.table_name <> '__diesel_schema_migrations'
UNION ALL
SELECT 'constraint ' || rel.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
  FROM pg_constraint con
  JOIN pg_class rel ON rel.oid = con.conrelid
  JOIN pg_namespace ns ON ns.oid = rel.relnamespace
 WHERE ns.nspname = 'public' AND rel.relname <> '__diesel_schema_migrations'
UNION ALL
SELECT 'index ' || indexdef
  FROM pg_indexes
 WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'
UNION ALL
SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname || ' ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'function ' || p.proname || ' ' || md5(pg_get_functiondef(p.oid))
  FROM pg_proc p
  JOIN pg_namespace ns ON ns.oid = p.pronamespace
 WHERE ns.nspname = 'public'
"#;
