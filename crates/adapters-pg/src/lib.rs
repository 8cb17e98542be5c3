//! The store ports ([`OrganizationStore`], [`ApiKeyStore`], [`CreditStore`], [`JobQueue`],
//! [`IdempotencyStore`], [`AuditLog`], [`WebhookStore`]) on PostgreSQL, with diesel and
//! diesel-async (`postgres_backend`: no libpq) over a deadpool pool.
//!
//! - Every write that is a material action writes its trail (audit events, webhook events and
//!   their deliveries) in its own transaction, only when its effect is applied (`trail.rs`).
//! - Every transaction lives inside one adapter method and awaits nothing but the database, so a
//!   dropped request future can only abandon a transaction the server then rolls back.
//! - The pool has an explicit size and wait/create/recycle timeouts: an unreachable database
//!   answers [`StoreError::Unavailable`] within seconds, never a hang.
//! - Errors: pool and connection failures → `Unavailable`; unique violations → `Duplicate`;
//!   anything else → `Internal`. Nothing the database can cause panics.
//! - [`run_migrations`] applies the embedded `migrations/` under a PostgreSQL advisory lock, so
//!   several processes may start at once.
//!
//! [`OrganizationStore`]: domain::ports::OrganizationStore
//! [`ApiKeyStore`]: domain::ports::ApiKeyStore
//! [`CreditStore`]: domain::ports::CreditStore
//! [`JobQueue`]: domain::ports::JobQueue
//! [`IdempotencyStore`]: domain::ports::IdempotencyStore
//! [`AuditLog`]: domain::ports::AuditLog
//! [`WebhookStore`]: domain::ports::WebhookStore

/// Keeps the rows of a boxed, newest-first query that come strictly after a keyset cursor (API.md
/// §1.5): created before it, or at the same instant with a smaller id. The `<=` is what an index
/// on (…, created_at desc, id desc) serves as a range; the rest only sorts out ties.
macro_rules! strictly_after {
    ($query:expr, $after:expr, $created_at:expr, $id:expr) => {
        match $after {
            Some(after) => {
                let at = after.created_at.as_offset_datetime();
                $query.filter(
                    $created_at
                        .le(at)
                        .and($created_at.lt(at).or($id.lt(after.id))),
                )
            }
            None => $query,
        }
    };
}

mod api_keys;
mod audit;
mod credits;
mod error;
mod idempotency;
mod jobs;
mod migrations;
mod organizations;
mod rows;
mod schema;
mod status_latch;
#[cfg(feature = "testing")]
pub mod testing;
mod trail;
mod webhooks;

use std::fmt;
use std::time::Duration;

use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncPgConnection;
use domain::ports::StoreError;

pub use migrations::run_migrations;

/// How the connection pool behaves. The defaults suit a server: a handful of connections, and a
/// store that cannot hand one out within about five seconds is reported unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections held open at once; at least 2.
    pub max_size: usize,
    /// How long a caller waits for a free connection when all are in use.
    pub wait_timeout: Duration,
    /// How long opening a new connection (TCP, TLS, startup) may take.
    pub create_timeout: Duration,
    /// How long the health check of a pooled connection may take before it is handed out.
    pub recycle_timeout: Duration,
}

impl PoolSettings {
    /// The smallest pool that lets one caller's transaction not starve every other caller.
    pub const MIN_SIZE: usize = 2;
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 10,
            wait_timeout: Duration::from_secs(3),
            create_timeout: Duration::from_secs(3),
            recycle_timeout: Duration::from_secs(2),
        }
    }
}

/// Both store ports on one PostgreSQL database. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

impl PgStore {
    /// Builds the pool and opens one connection to check that the database answers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database cannot be reached within the pool's timeouts;
    /// [`StoreError::Internal`] if the settings are unusable (a pool smaller than 2).
    pub async fn connect(
        database_url: &str,
        settings: PoolSettings,
    ) -> Result<PgStore, StoreError> {
        let store = Self::connect_lazy(database_url, settings)?;
        drop(store.conn().await?);
        Ok(store)
    }

    /// Builds the pool without opening a connection: the first query connects. A server can start
    /// this way while the database is down and report it through `/readyz`.
    ///
    /// # Errors
    /// [`StoreError::Internal`] if the settings are unusable (a pool smaller than 2).
    pub fn connect_lazy(database_url: &str, settings: PoolSettings) -> Result<PgStore, StoreError> {
        if settings.max_size < PoolSettings::MIN_SIZE {
            return Err(StoreError::Internal(format!(
                "the pool size must be at least {}, not {}",
                PoolSettings::MIN_SIZE,
                settings.max_size
            )));
        }
        // The default recycling method is `Verified`: a pooled connection is checked with a
        // trivial query (bounded by the recycle timeout) before it is handed out, so a database
        // restart costs no failed request.
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
        let pool = Pool::builder(manager)
            .max_size(settings.max_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.create_timeout))
            .recycle_timeout(Some(settings.recycle_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        Ok(PgStore { pool })
    }

    /// Whether the store is reachable and every embedded migration has been applied: `/readyz`.
    pub async fn is_ready(&self) -> bool {
        match self.conn().await {
            Ok(mut conn) => migrations::all_applied(&mut conn).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    pub(crate) async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool.get().await.map_err(error::from_pool)
    }
}

/// Converts a page size to SQL's `LIMIT`, saturating (no page is anywhere near `i64::MAX`).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
