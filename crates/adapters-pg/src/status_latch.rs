//! The organization status latch: what orders a change of an organization's status (suspend,
//! resume, archive, the operator's platform-level switch) against the spending that must not
//! cross it (a reservation, a settle, an allocation).
//!
//! It is a transaction-scoped PostgreSQL advisory lock per organization, not a `FOR SHARE` lock
//! on the organization's row, because of starvation: a row share-locked by one transaction
//! admits the next share-locker at once, even while an `UPDATE` waits for it. A child reserving
//! through many connections — exactly the runaway customer the kill switch exists for — kept
//! its row share-locked without a gap, and its parent's suspend waited for as long as the
//! stream lasted (21 s in `races::reservations_racing_a_suspend…`, bounded only by the test).
//! The lock manager that holds advisory locks queues fairly: once an exclusive request waits,
//! later shared requests queue behind it, so a status change waits only for the spending
//! already in flight.
//!
//! Spending takes the latch **shared** on its organization and the parent, in id order (one
//! order everywhere, so two transactions never wait on each other in a cycle), before any row
//! lock, then reads their status: a status change either committed before (and is seen) or
//! waits for the spending to commit. A status change takes it **exclusive** on its organization
//! as its first statement. Rarer writes (a key minted, an endpoint created, an event fanned out)
//! keep the row's `FOR SHARE`: they cannot be sent fast enough to starve anything.
//!
//! Both are SQL functions of migration `000012`: the server sends a call that is cheap to plan,
//! and PL/pgSQL keeps the plans of what the call runs (statements built with `sql_query` are
//! planned afresh each time, which cost the mixed load run measurable throughput).

use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel::OptionalExtension;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// An organization's status and its parent's, as they stand under the latch.
#[derive(diesel::QueryableByName)]
pub(crate) struct Statuses {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub parent: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub parent_status: Option<String>,
}

impl Statuses {
    /// The organization or its parent is suspended: nothing of it spends (API.md §3).
    pub fn suspended(&self) -> bool {
        self.status == "suspended" || self.parent_status.as_deref() == Some("suspended")
    }
}

/// Takes the latch shared on `organization` and its parent until the transaction ends, then
/// reads both statuses: a change of either has committed and is read here, or waits for this
/// transaction. `None` for an organization that does not exist.
pub(crate) async fn share(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
) -> Result<Option<Statuses>, diesel::result::Error> {
    diesel::sql_query("SELECT status, parent, parent_status FROM status_latch_share($1)")
        .bind::<SqlUuid, _>(organization)
        .get_result(conn)
        .await
        .optional()
}

/// Takes the latch exclusive on `organization` until the transaction ends: spending of it in
/// flight finishes first, and spending that comes later waits for this transaction.
pub(crate) async fn exclusive(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT status_latch_exclusive($1)")
        .bind::<SqlUuid, _>(organization)
        .execute(conn)
        .await
        .map(drop)
}
