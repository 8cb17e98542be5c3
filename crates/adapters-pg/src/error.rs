//! Every failure of the database or the pool, as a [`StoreError`] (ports.rs):
//! unreachable or shutting down → `Unavailable`, unique violation → `Duplicate`, anything else → `Internal`.

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
        // The server is going away or not there yet: its session was cut by a shutdown
        // (57P01 admin_shutdown, 57P02 crash_shutdown), it is starting up (57P03), the connection
        // failed (class 08), or it has no connection slot left (53300). Retryable, not a bug.
        DieselError::DatabaseError(_, info)
            if info
                .sqlstate()
                .is_some_and(|state| unreachable(state.as_str())) =>
        {
            StoreError::Unavailable(info.message().to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// SQLSTATEs that mean "the database cannot serve this right now; retry": unreachable or going
/// away, and — retryable by definition — a deadlock victim (40P01) or a serialization failure
/// (40001), which roll back the whole transaction.
fn unreachable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("57P")
        || sqlstate == "53300"
        || sqlstate == "40P01"
        || sqlstate == "40001"
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

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, SqlState};

    use super::*;

    /// What PostgreSQL sends with an error, as far as the mapping looks.
    struct Sent(&'static str, &'static str);

    impl DatabaseErrorInformation for Sent {
        fn message(&self) -> &str {
            self.1
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
        fn sqlstate(&self) -> Option<SqlState> {
            self.0.parse().ok()
        }
    }

    fn mapped(sqlstate: &'static str, message: &'static str) -> StoreError {
        from_diesel(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(Sent(sqlstate, message)),
        ))
    }

    #[test]
    fn a_database_going_away_is_unavailable_not_internal() {
        for (sqlstate, message) in [
            (
                "57P01",
                "terminating connection due to administrator command",
            ),
            (
                "57P02",
                "terminating connection because of crash of another server process",
            ),
            ("57P03", "the database system is starting up"),
            ("08006", "connection failure"),
            ("53300", "sorry, too many clients already"),
        ] {
            assert!(
                matches!(mapped(sqlstate, message), StoreError::Unavailable(_)),
                "{sqlstate}"
            );
        }
        assert!(matches!(
            mapped("22P02", "invalid input syntax"),
            StoreError::Internal(_)
        ));
    }
}
