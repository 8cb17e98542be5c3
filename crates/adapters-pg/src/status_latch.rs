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

use diesel::sql_types::{Integer, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The advisory-lock namespace of the latch (first key of the two-key form; "org!" in ASCII).
/// The migrations' lock uses the one-key form, a separate space.
const NAMESPACE: i32 = 0x6f72_6721;

/// Takes the latch shared on `organization` and on its parent, in id order, until the
/// transaction ends; false, taking nothing, when there is no such organization. One statement:
/// the parent is looked up by the statement that latches it (it never changes).
pub(crate) async fn share_with_parent(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
) -> Result<bool, diesel::result::Error> {
    #[derive(diesel::QueryableByName)]
    struct Latched {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        latched: i64,
    }
    // The ordered subquery feeds the aggregate row by row, so the locks are taken in id order.
    let Latched { latched } = diesel::sql_query(
        "SELECT count(pg_advisory_xact_lock_shared($1, hashtext(id::text))) AS latched \
         FROM (SELECT id FROM ( \
                 SELECT o.id FROM organizations o WHERE o.id = $2 \
                 UNION ALL \
                 SELECT o.parent_id FROM organizations o \
                 WHERE o.id = $2 AND o.parent_id IS NOT NULL) ids \
               ORDER BY id) sorted",
    )
    .bind::<Integer, _>(NAMESPACE)
    .bind::<SqlUuid, _>(organization)
    .get_result(conn)
    .await?;
    Ok(latched > 0)
}

/// Takes the latch exclusive on `organization` until the transaction ends: spending of it in
/// flight finishes first, and spending that comes later waits for this transaction.
pub(crate) async fn exclusive(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind::<Integer, _>(NAMESPACE)
        .bind::<SqlUuid, _>(organization)
        .execute(conn)
        .await
        .map(drop)
}
