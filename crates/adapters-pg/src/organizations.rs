//! [`OrganizationStore`] on PostgreSQL.

use async_trait::async_trait;
use diesel::prelude::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::idempotency::{Completion, PendingCompletion};
use domain::organization::{Organization, Revision, StatusKind};
use domain::pagination::PageRequest;
use domain::ports::{Archive, OrganizationStore, Reclaim, StoreError, Write};
use domain::trail::Trail;
use domain::OrganizationId;

use crate::error::from_diesel;
use crate::idempotency::{complete_with_effect, from_effect_transaction};
use crate::rows::{revision_to_db, OrganizationChanges, OrganizationRow};
use crate::schema::{api_keys, organizations};
use crate::{sql_limit, PgStore};

#[async_trait]
impl OrganizationStore for PgStore {
    async fn insert(
        &self,
        org: &Organization,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<(), StoreError> {
        let row = OrganizationRow::from_domain(org)?;
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            diesel::insert_into(organizations::table)
                .values(&row)
                .execute(conn)
                .await?;
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn find(&self, id: OrganizationId) -> Result<Option<Organization>, StoreError> {
        let mut conn = self.conn().await?;
        organizations::table
            .find(id.as_uuid())
            .select(OrganizationRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?
            .map(OrganizationRow::into_domain)
            .transpose()
    }

    async fn list_children(
        &self,
        parent: OrganizationId,
        status: Option<StatusKind>,
        page: PageRequest,
    ) -> Result<Vec<Organization>, StoreError> {
        use organizations::dsl;
        let mut query = organizations::table
            .filter(dsl::parent_id.eq(parent.as_uuid()))
            .select(OrganizationRow::as_select())
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(dsl::status.eq(status.as_str()));
        }
        // The `<=` of the cursor condition is an index range on (parent_id, created_at desc,
        // id desc); the rest only sorts out ties.
        query = strictly_after!(query, page.after, dsl::created_at, dsl::id);
        let mut conn = self.conn().await?;
        query
            .order((dsl::created_at.desc(), dsl::id.desc()))
            .limit(sql_limit(page.limit))
            .load(&mut conn)
            .await
            .map_err(from_diesel)?
            .into_iter()
            .map(OrganizationRow::into_domain)
            .collect()
    }

    async fn update(
        &self,
        org: &Organization,
        expected: Revision,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Write, StoreError> {
        if org.status.archived_at().is_some() {
            return Err(StoreError::Internal(
                "update cannot archive an organization: use archive".to_owned(),
            ));
        }
        let changes = OrganizationChanges::from_domain(org)?;
        let expected = revision_to_db(expected)?;
        let id = org.id.as_uuid();
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // First the status latch, exclusive (`status_latch.rs`): spending of this
            // organization in flight finishes first, and what comes later sees this change.
            crate::status_latch::exclusive(conn, id).await?;
            if !compare_and_set(conn, id, expected, &changes).await? {
                return Ok(Write::Stale);
            }
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await?;
            Ok(Write::Applied)
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn archive(
        &self,
        org: &Organization,
        expected: Revision,
        reclaim: Reclaim,
        trail: &Trail,
        done: Option<PendingCompletion<Archive>>,
    ) -> Result<Archive, StoreError> {
        let Some(archived_at) = org.status.archived_at() else {
            return Err(StoreError::Internal(
                "archive needs an archived organization".to_owned(),
            ));
        };
        let archived_at = archived_at.as_offset_datetime();
        let changes = OrganizationChanges::from_domain(org)?;
        let expected = revision_to_db(expected)?;
        let id = org.id.as_uuid();
        let parent = org.parent_id.map(|p| p.as_uuid());
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // The status latch, exclusive, as for any change of status (see `update`): an
            // allocation, reservation or settle in flight commits first, and is swept below.
            crate::status_latch::exclusive(conn, id).await?;
            // The guarded UPDATE takes the organization's row lock; a concurrent key insert holds
            // a share lock on that row (see `ApiKeyStore::insert`), so it either committed
            // before this point (and its key is revoked below) or reads `archived` after us.
            if !compare_and_set(conn, id, expected, &changes).await? {
                return Ok(Archive::Stale);
            }
            let revoked = diesel::update(
                api_keys::table
                    .filter(api_keys::organization_id.eq(id))
                    .filter(crate::api_keys::usable_at(archived_at)),
            )
            .set(api_keys::revoked_at.eq(Some(archived_at)))
            .execute(conn)
            .await?;
            let reclaimed_credits = match parent {
                Some(parent) => {
                    crate::credits::sweep(conn, id, parent, reclaim, archived_at).await?
                }
                None => 0,
            };
            crate::jobs::cancel_for(conn, id).await?;
            // Before the trail: what the archive records goes to the parent's `all_children`
            // endpoints, never to the archived organization's own.
            crate::webhooks::cancel_pending_of_organization(conn, id, archived_at).await?;
            crate::trail::write(conn, &trail.resolved(reclaimed_credits)).await?;
            let applied = Archive::Applied {
                revoked_keys: u64::try_from(revoked).unwrap_or(u64::MAX),
                reclaimed_credits,
            };
            complete_with_effect(conn, done.map(|d| d.resolve(&applied)).as_ref()).await?;
            Ok(applied)
        })
        .await
        .map_err(from_effect_transaction)
    }
}

/// Writes `changes` only if the row is still at `expected`; false when it is not (stale).
/// One statement: concurrent writers queue on the row lock, and each re-checks the revision
/// against the row the previous one committed.
async fn compare_and_set(
    conn: &mut AsyncPgConnection,
    id: uuid::Uuid,
    expected: i64,
    changes: &OrganizationChanges,
) -> Result<bool, diesel::result::Error> {
    use organizations::dsl;
    let written = diesel::update(
        organizations::table
            .filter(dsl::id.eq(id))
            .filter(dsl::revision.eq(expected)),
    )
    .set(changes)
    .execute(conn)
    .await?;
    Ok(written > 0)
}
