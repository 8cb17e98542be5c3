//! [`AuditLog`] on PostgreSQL. Events are written by the trails of the other writes
//! (`crate::trail`); the table refuses UPDATE and DELETE (a trigger). Kill-switch refusals are
//! throttled per key by a guarded upsert on `kill_switch_refusals`, in the same transaction as
//! the event it lets through.

use async_trait::async_trait;
use diesel::prelude::{
    BoolExpressionMethods, ExpressionMethods, Insertable, QueryDsl, Queryable, QueryableByName,
    Selectable, SelectableHelper,
};
use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::audit::{Actor, AuditEvent, AuditEventId, AuditEventType, AuditFilter};
use domain::pagination::PageRequest;
use domain::ports::{AuditLog, StoreError};
use domain::{ApiKeyId, OrganizationId, Timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{corrupt, from_diesel};
use crate::schema::audit_events;
use crate::{sql_limit, PgStore};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub(crate) struct AuditRow {
    id: Uuid,
    event_type: String,
    occurred_at: OffsetDateTime,
    request_id: Option<String>,
    organization_id: Uuid,
    actor_type: String,
    actor_api_key_id: Option<Uuid>,
    actor_organization_id: Option<Uuid>,
    data: String,
}

impl AuditRow {
    pub(crate) fn from_domain(event: &AuditEvent) -> Self {
        let (actor_type, actor_api_key_id, actor_organization_id) = match event.actor {
            Actor::ApiKey {
                api_key_id,
                organization_id,
            } => (
                "api_key",
                Some(api_key_id.as_uuid()),
                Some(organization_id.as_uuid()),
            ),
            Actor::Operator => ("operator", None, None),
        };
        Self {
            id: event.id.as_uuid(),
            event_type: event.event_type.as_str().to_owned(),
            occurred_at: event.occurred_at.as_offset_datetime(),
            request_id: event.request_id.clone(),
            organization_id: event.organization_id.as_uuid(),
            actor_type: actor_type.to_owned(),
            actor_api_key_id,
            actor_organization_id,
            data: event.data.clone(),
        }
    }

    fn into_domain(self) -> Result<AuditEvent, StoreError> {
        let actor = match (
            self.actor_type.as_str(),
            self.actor_api_key_id,
            self.actor_organization_id,
        ) {
            ("api_key", Some(key), Some(organization)) => Actor::ApiKey {
                api_key_id: ApiKeyId::from_uuid(key),
                organization_id: OrganizationId::from_uuid(organization),
            },
            ("operator", None, None) => Actor::Operator,
            (other, _, _) => return Err(corrupt("audit actor", other)),
        };
        Ok(AuditEvent {
            id: AuditEventId::from_uuid(self.id),
            event_type: AuditEventType::parse(&self.event_type)
                .ok_or_else(|| corrupt("audit event type", &self.event_type))?,
            occurred_at: Timestamp::from_offset_datetime(self.occurred_at),
            request_id: self.request_id,
            organization_id: OrganizationId::from_uuid(self.organization_id),
            actor,
            data: self.data,
        })
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[async_trait]
impl AuditLog for PgStore {
    async fn list(
        &self,
        organization: OrganizationId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        use audit_events::dsl;
        let mut query = audit_events::table
            .filter(dsl::organization_id.eq(organization.as_uuid()))
            .select(AuditRow::as_select())
            .into_boxed();
        if let Some(event_type) = filter.event_type {
            query = query.filter(dsl::event_type.eq(event_type.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(dsl::occurred_at.ge(since.as_offset_datetime()));
        }
        if let Some(until) = filter.until {
            query = query.filter(dsl::occurred_at.le(until.as_offset_datetime()));
        }
        query = strictly_after!(query, page.after, dsl::occurred_at, dsl::id);
        let mut conn = self.conn().await?;
        query
            .order((dsl::occurred_at.desc(), dsl::id.desc()))
            .limit(sql_limit(page.limit))
            .load(&mut conn)
            .await
            .map_err(from_diesel)?
            .into_iter()
            .map(AuditRow::into_domain)
            .collect()
    }

    async fn record_refusal(
        &self,
        event: &AuditEvent,
        since: Timestamp,
    ) -> Result<bool, StoreError> {
        let Actor::ApiKey { api_key_id, .. } = event.actor else {
            return Err(StoreError::Internal(
                "a kill-switch refusal is a request by an API key".to_owned(),
            ));
        };
        let row = AuditRow::from_domain(event);
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // Moves the key's last refusal forward only if it is not after `since`; concurrent
            // refusals of one key queue on its row, and the second sees the first's instant.
            let recorded: Vec<Count> = diesel::sql_query(
                "WITH moved AS ( \
                   INSERT INTO kill_switch_refusals AS r (api_key_id, last_at) VALUES ($1, $2) \
                   ON CONFLICT (api_key_id) DO UPDATE \
                     SET last_at = GREATEST(r.last_at, EXCLUDED.last_at) \
                     WHERE r.last_at <= $3 \
                   RETURNING 1) \
                 SELECT count(*) AS count FROM moved",
            )
            .bind::<SqlUuid, _>(api_key_id.as_uuid())
            .bind::<Timestamptz, _>(event.occurred_at.as_offset_datetime())
            .bind::<Timestamptz, _>(since.as_offset_datetime())
            .load(conn)
            .await?;
            if recorded.first().is_none_or(|c| c.count == 0) {
                return Ok(false);
            }
            diesel::insert_into(audit_events::table)
                .values(&row)
                .execute(conn)
                .await?;
            Ok(true)
        })
        .await
        .map_err(from_diesel)
    }
}
