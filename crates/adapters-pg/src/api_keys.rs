//! [`ApiKeyStore`] on PostgreSQL.

use async_trait::async_trait;
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::prelude::{
    BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
    OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel::sql_types::{Bool, Nullable};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::api_key::{ApiKey, KeyHandle, RateLimitTier, SecretHash, Supersession};
use domain::idempotency::{Completion, PendingCompletion};
use domain::pagination::PageRequest;
use domain::policy::Credentials;
use domain::ports::{ApiKeyStore, KeyInsert, Rotation, StoreError};
use domain::trail::Trail;
use domain::{ApiKeyId, OrganizationId, Timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{corrupt, from_diesel};
use crate::idempotency::{complete_with_effect, from_effect_transaction};
use crate::rows::{ApiKeyRow, OrganizationRow};
use crate::schema::{api_keys, organizations};
use crate::{sql_limit, PgStore};

diesel::alias!(organizations as parents: ParentsAlias);

/// SQL for [`ApiKey::state_at`] being `Usable`: not revoked, not killed, not past its grace.
pub(crate) fn usable_at(
    at: OffsetDateTime,
) -> Box<dyn BoxableExpression<api_keys::table, Pg, SqlType = Nullable<Bool>>> {
    use api_keys::dsl;
    Box::new(
        dsl::revoked_at
            .is_null()
            .and(dsl::killed_at.is_null())
            .and(dsl::grace_until.is_null().or(dsl::grace_until.gt(at))),
    )
}

/// The changes that apply only to a key still usable at the change's instant.
#[derive(Clone, Copy)]
enum KeyChange<'a> {
    Revoke,
    Kill,
    ReplaceSecret {
        handle: &'a KeyHandle,
        hash: &'a SecretHash,
    },
}

impl PgStore {
    /// Applies `change` at `at` if the key is usable then, writing `trail` and `done` (rendered
    /// from the changed key) with it; returns the key as stored afterwards.
    async fn change_if_usable(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        change: KeyChange<'_>,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        use api_keys::dsl;
        let at = at.as_offset_datetime();
        let mut conn = self.conn().await?;
        let changed = conn
            .transaction(async |conn| {
                let target =
                    diesel::update(api_keys::table.find(id.as_uuid()).filter(usable_at(at)));
                let changed = match change {
                    KeyChange::Revoke => {
                        target
                            .set(dsl::revoked_at.eq(Some(at)))
                            .returning(ApiKeyRow::as_returning())
                            .get_result(conn)
                            .await
                    }
                    KeyChange::Kill => {
                        target
                            .set(dsl::killed_at.eq(Some(at)))
                            .returning(ApiKeyRow::as_returning())
                            .get_result(conn)
                            .await
                    }
                    KeyChange::ReplaceSecret { handle, hash } => {
                        target
                            .set((
                                dsl::handle.eq(handle.as_str().to_owned()),
                                dsl::secret_hash.eq(hash.as_bytes().to_vec()),
                                dsl::rotated_at.eq(Some(at)),
                            ))
                            .returning(ApiKeyRow::as_returning())
                            .get_result(conn)
                            .await
                    }
                }
                .optional()?;
                // Only a change that happened leaves a trail, and the answer that reports it.
                if let Some(row) = &changed {
                    crate::trail::write(conn, trail).await?;
                    if let Some(done) = &done {
                        let key = row.clone().into_domain().map_err(|e| {
                            diesel::result::Error::DeserializationError(Box::new(e))
                        })?;
                        complete_with_effect(conn, Some(&done.resolve(&key))).await?;
                    }
                }
                Ok(changed)
            })
            .await
            .map_err(from_effect_transaction)?;
        let row = match changed {
            Some(row) => Some(row),
            // Unknown, or no longer usable: then it is returned as stored.
            None => api_keys::table
                .find(id.as_uuid())
                .select(ApiKeyRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(from_diesel)?,
        };
        row.map(ApiKeyRow::into_domain).transpose()
    }
}

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn insert(
        &self,
        key: &ApiKey,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<KeyInsert, StoreError> {
        let row = ApiKeyRow::from_domain(key);
        let organization_id = key.organization_id.as_uuid();
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // FOR SHARE conflicts with the row lock archive's guarded UPDATE takes: whichever
            // comes second waits for the first to commit, then sees its effect.
            let status: Option<String> = organizations::table
                .find(organization_id)
                .select(organizations::status)
                .for_share()
                .first(conn)
                .await
                .optional()?;
            match status.as_deref() {
                None | Some("archived") => Ok(KeyInsert::OrganizationClosed),
                Some(_) => {
                    diesel::insert_into(api_keys::table)
                        .values(&row)
                        .execute(conn)
                        .await?;
                    crate::trail::write(conn, trail).await?;
                    complete_with_effect(conn, done.as_ref()).await?;
                    Ok(KeyInsert::Inserted)
                }
            }
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn find(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let mut conn = self.conn().await?;
        api_keys::table
            .find(id.as_uuid())
            .select(ApiKeyRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?
            .map(ApiKeyRow::into_domain)
            .transpose()
    }

    async fn list(
        &self,
        organization: OrganizationId,
        page: PageRequest,
    ) -> Result<Vec<ApiKey>, StoreError> {
        use api_keys::dsl;
        let mut query = api_keys::table
            .filter(dsl::organization_id.eq(organization.as_uuid()))
            .select(ApiKeyRow::as_select())
            .into_boxed();
        query = strictly_after!(query, page.after, dsl::created_at, dsl::id);
        let mut conn = self.conn().await?;
        query
            .order((dsl::created_at.desc(), dsl::id.desc()))
            .limit(sql_limit(page.limit))
            .load(&mut conn)
            .await
            .map_err(from_diesel)?
            .into_iter()
            .map(ApiKeyRow::into_domain)
            .collect()
    }

    async fn revoke(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.change_if_usable(id, at, KeyChange::Revoke, trail, done)
            .await
    }

    async fn kill(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.change_if_usable(id, at, KeyChange::Kill, trail, done)
            .await
    }

    async fn rotate(
        &self,
        old: ApiKeyId,
        supersession: Supersession,
        at: Timestamp,
        new: &ApiKey,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Rotation, StoreError> {
        use api_keys::dsl;
        let row = ApiKeyRow::from_domain(new);
        let at = at.as_offset_datetime();
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // The old key's row lock serializes this with revoke, kill and another rotation; the
            // organization's share lock with archive (as in `insert`).
            let rotatable: Option<Uuid> = api_keys::table
                .find(old.as_uuid())
                .filter(usable_at(at))
                .filter(dsl::superseded_by.is_null())
                .select(dsl::organization_id)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some(organization_id) = rotatable else {
                return Ok(Rotation::KeyNotRotatable);
            };
            let status: Option<String> = organizations::table
                .find(organization_id)
                .select(organizations::status)
                .for_share()
                .first(conn)
                .await
                .optional()?;
            if matches!(status.as_deref(), None | Some("archived")) {
                return Ok(Rotation::OrganizationClosed);
            }
            // The new key first: the old one's `superseded_by` references it.
            diesel::insert_into(api_keys::table)
                .values(&row)
                .execute(conn)
                .await?;
            diesel::update(api_keys::table.find(old.as_uuid()))
                .set((
                    dsl::rotated_at.eq(Some(at)),
                    dsl::superseded_by.eq(Some(supersession.by.as_uuid())),
                    dsl::grace_until.eq(Some(supersession.grace_until.as_offset_datetime())),
                ))
                .execute(conn)
                .await?;
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await?;
            Ok(Rotation::Applied)
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn replace_secret(
        &self,
        id: ApiKeyId,
        handle: &KeyHandle,
        hash: &SecretHash,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.change_if_usable(
            id,
            at,
            KeyChange::ReplaceSecret { handle, hash },
            trail,
            done,
        )
        .await
    }

    async fn set_rate_limit_tier(
        &self,
        id: ApiKeyId,
        tier: RateLimitTier,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut conn = self.conn().await?;
        diesel::update(api_keys::table.find(id.as_uuid()))
            .set(api_keys::rate_limit_tier.eq(tier.as_str()))
            .returning(ApiKeyRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?
            .map(ApiKeyRow::into_domain)
            .transpose()
    }

    async fn record_last_used(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        use api_keys::dsl;
        let uses: Vec<(Uuid, OffsetDateTime)> = uses
            .iter()
            .map(|(id, at)| (id.as_uuid(), at.as_offset_datetime()))
            .collect();
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            for (id, at) in &uses {
                diesel::update(
                    api_keys::table
                        .find(*id)
                        .filter(dsl::last_used_at.is_null().or(dsl::last_used_at.lt(*at))),
                )
                .set(dsl::last_used_at.eq(Some(*at)))
                .execute(conn)
                .await?;
            }
            Ok(())
        })
        .await
        .map_err(from_diesel)
    }

    async fn count_active(
        &self,
        organization: OrganizationId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        use api_keys::dsl;
        let mut conn = self.conn().await?;
        let count: i64 = api_keys::table
            .filter(dsl::organization_id.eq(organization.as_uuid()))
            .filter(usable_at(now.as_offset_datetime()))
            .count()
            .get_result(&mut conn)
            .await
            .map_err(from_diesel)?;
        u64::try_from(count).map_err(|_| corrupt("key count", count))
    }

    async fn find_credentials(
        &self,
        handle: &KeyHandle,
    ) -> Result<Option<Credentials>, StoreError> {
        let mut conn = self.conn().await?;
        // One statement, so key, organization and parent are read at one moment; no cache.
        let found: Option<(ApiKeyRow, OrganizationRow, Option<OrganizationRow>)> = api_keys::table
            .inner_join(organizations::table)
            .left_join(
                parents.on(parents
                    .field(organizations::id)
                    .nullable()
                    .eq(organizations::parent_id)),
            )
            .filter(api_keys::handle.eq(handle.as_str()))
            .select((
                api_keys::all_columns,
                organizations::all_columns,
                parents.fields(organizations::all_columns).nullable(),
            ))
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?;
        let Some((key, organization, parent)) = found else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            key: key.into_domain()?,
            organization: organization.into_domain()?,
            parent: parent.map(OrganizationRow::into_domain).transpose()?,
        }))
    }
}
