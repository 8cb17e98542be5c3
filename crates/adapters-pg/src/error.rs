//! Every failure of the database or the pool, as a [`StoreError`] (ports.rs):
//! unreachable → `Unavailable`, unique violation → `Duplicate`, anything else → `Internal`.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use domain::ports::StoreError;

pub(crate) fn from_diesel(error: DieselError) -> StoreError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let what = info.constraint_name().unwrap_or("a unique constraint");
            StoreError::Duplicate(format!("{what}: {}", info.message()))
        }
        // No SQLSTATE: the connection broke under the query (server gone, socket closed).
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => StoreError::Unavailable(info.message().to_owned()),
        DieselError::BrokenTransactionManager => {
            StoreError::Unavailable("the connection's transaction state is broken".to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

pub(crate) fn from_pool(error: PoolError) -> StoreError {
    // Every pool failure (wait/create/recycle timeout, connection refused, closed pool) means
    // the store cannot be reached right now.
    StoreError::Unavailable(format!("no database connection: {error}"))
}

pub(crate) fn from_connection(error: diesel::ConnectionError) -> StoreError {
    StoreError::Unavailable(format!("cannot connect to the database: {error}"))
}

/// A stored value the domain does not accept: the row was written by something else.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {detail}"))
}
