//! [`ApiKeyStore`] on PostgreSQL.

use async_trait::async_trait;
use diesel::prelude::{
    BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
    OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::api_key::{ApiKey, KeyHandle};
use domain::pagination::PageRequest;
use domain::policy::Credentials;
use domain::ports::{ApiKeyStore, KeyInsert, StoreError};
use domain::{ApiKeyId, OrganizationId, Timestamp};

use crate::error::{corrupt, from_diesel};
use crate::rows::{ApiKeyRow, OrganizationRow};
use crate::schema::{api_keys, organizations};
use crate::{sql_limit, PgStore};

diesel::alias!(organizations as parents: ParentsAlias);

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn insert(&self, key: &ApiKey) -> Result<KeyInsert, StoreError> {
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
                    Ok(KeyInsert::Inserted)
                }
            }
        })
        .await
        .map_err(from_diesel)
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
        if let Some(after) = page.after {
            let at = after.created_at.as_offset_datetime();
            query = query.filter(
                dsl::created_at
                    .le(at)
                    .and(dsl::created_at.lt(at).or(dsl::id.lt(after.id))),
            );
        }
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

    async fn revoke(&self, id: ApiKeyId, at: Timestamp) -> Result<Option<ApiKey>, StoreError> {
        use api_keys::dsl;
        let mut conn = self.conn().await?;
        let revoked = diesel::update(
            api_keys::table
                .find(id.as_uuid())
                .filter(dsl::revoked_at.is_null()),
        )
        .set(dsl::revoked_at.eq(Some(at.as_offset_datetime())))
        .returning(ApiKeyRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(from_diesel)?;
        let row = match revoked {
            Some(row) => Some(row),
            // Unknown, or already revoked: then it is returned as stored.
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

    async fn count_active(&self, organization: OrganizationId) -> Result<u64, StoreError> {
        use api_keys::dsl;
        let mut conn = self.conn().await?;
        let count: i64 = api_keys::table
            .filter(dsl::organization_id.eq(organization.as_uuid()))
            .filter(dsl::revoked_at.is_null())
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
