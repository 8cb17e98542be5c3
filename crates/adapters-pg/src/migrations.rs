//! The embedded migrations (`migrations/` at the workspace root) and how they are applied.
//!
//! diesel's migration harness is synchronous. It runs here on a dedicated thread, over
//! diesel-async's `AsyncConnectionWrapper`, which then drives its own small runtime: that works
//! whatever runtime the caller is on — including a current-thread one, where the async harness
//! would panic — and needs no libpq.

use std::time::Duration;

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sql_types::BigInt;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use domain::ports::StoreError;

use crate::error::{from_connection, from_diesel};
use crate::schema::__diesel_schema_migrations;

pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The advisory lock every migrating process takes first ("lp-migra" in ASCII), so concurrent
/// start-ups apply each migration once.
pub(crate) const ADVISORY_LOCK_KEY: i64 = 0x6c70_2d6d_6967_7261;

/// How long the reachability check before migrating may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) type MigrationConnection = AsyncConnectionWrapper<AsyncPgConnection>;

/// Applies every pending embedded migration, under a PostgreSQL advisory lock so that several
/// processes starting at once apply each migration exactly once. Works from any tokio runtime,
/// current-thread included.
///
/// # Errors
/// [`StoreError::Unavailable`] if the database cannot be reached (within about five seconds);
/// [`StoreError::Internal`] if a migration fails.
pub async fn run_migrations(database_url: &str) -> Result<(), StoreError> {
    with_migration_connection(database_url, |conn| {
        diesel_migrations::MigrationHarness::run_pending_migrations(conn, MIGRATIONS)
            .map(|applied| {
                for version in applied {
                    tracing::info!(%version, "applied migration");
                }
            })
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    })
    .await
}

/// Whether every embedded migration is recorded as applied on this connection's database.
pub(crate) async fn all_applied(conn: &mut AsyncPgConnection) -> Result<bool, StoreError> {
    use diesel::prelude::QueryDsl;
    use diesel_async::RunQueryDsl;
    let applied: Vec<String> = __diesel_schema_migrations::table
        .select(__diesel_schema_migrations::version)
        .load(conn)
        .await
        .map_err(from_diesel)?;
    Ok(embedded_versions()?
        .iter()
        .all(|version| applied.contains(version)))
}

/// The versions of the embedded migrations, oldest first.
pub(crate) fn embedded_versions() -> Result<Vec<String>, StoreError> {
    let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|e| StoreError::Internal(format!("cannot read the embedded migrations: {e}")))?;
    let mut versions: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

/// Runs `work` on a synchronous connection on a dedicated thread, holding the migration lock.
pub(crate) async fn with_migration_connection<T, F>(
    database_url: &str,
    work: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut MigrationConnection) -> Result<T, StoreError> + Send + 'static,
{
    // Fail fast (and without a thread) when the database cannot be reached at all.
    match tokio::time::timeout(CONNECT_TIMEOUT, AsyncPgConnection::establish(database_url)).await {
        Err(_) => {
            return Err(StoreError::Unavailable(format!(
                "the database did not answer within {CONNECT_TIMEOUT:?}"
            )))
        }
        Ok(Err(e)) => return Err(from_connection(e)),
        Ok(Ok(probe)) => drop(probe),
    }
    let url = database_url.to_owned();
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("pg-migrations".to_owned())
        .spawn(move || {
            // The receiver only goes away if the caller stopped waiting; nothing to tell then.
            let _ = answer.send(locked(&url, work));
        })
        .map_err(|e| StoreError::Internal(format!("cannot start the migration thread: {e}")))?;
    answered.await.map_err(|_| {
        StoreError::Internal("the migration thread stopped without an answer".to_owned())
    })?
}

fn locked<T>(
    database_url: &str,
    work: impl FnOnce(&mut MigrationConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut conn =
        <MigrationConnection as Connection>::establish(database_url).map_err(from_connection)?;
    diesel::RunQueryDsl::execute(
        diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(ADVISORY_LOCK_KEY),
        &mut conn,
    )
    .map_err(from_diesel)?;
    let outcome = work(&mut conn);
    // Closing the session would release the lock too; unlock explicitly all the same.
    let unlocked = diesel::RunQueryDsl::execute(
        diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(ADVISORY_LOCK_KEY),
        &mut conn,
    );
    let value = outcome?;
    unlocked.map_err(from_diesel)?;
    Ok(value)
}
