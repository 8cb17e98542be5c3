//! [`WebhookStore`] on PostgreSQL: endpoints, the outbox of events and their deliveries. Events
//! and deliveries are created by the trails of the other writes (`crate::trail`); each pending
//! delivery has a `webhook.deliver` job of the same id, bound to the endpoint's owner.
//!
//! Deleting an endpoint keeps its row (`deleted_at`): its deliveries keep their history (the
//! pending ones become `canceled` and their jobs are deleted), while every read of endpoints,
//! the fan-out and `pending_attempt` treat it as gone.

use async_trait::async_trait;
use diesel::prelude::{
    BoolExpressionMethods, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable,
    QueryableByName, Selectable, SelectableHelper,
};
use diesel::sql_types::{
    BigInt, Bool, Integer, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::idempotency::Completion;
use domain::jobs::Lease;
use domain::pagination::PageRequest;
use domain::ports::{EndpointInsert, StoreError, WebhookStore};
use domain::trail::Trail;
use domain::webhooks::{
    AttemptRecord, Delivery, DeliveryId, DeliveryStatus, EndpointId, EndpointScope, EndpointStatus,
    Event, EventId, EventSelection, EventType, PendingAttempt, SigningSecret, WebhookEndpoint,
    WebhookUrl, AUTO_PAUSE_AFTER, DELIVER,
};
use domain::{OrganizationId, Timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{corrupt, from_diesel};
use crate::idempotency::{complete_with_effect, from_effect_transaction};
use crate::schema::{jobs, organizations, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::{sql_limit, PgStore};

#[derive(Insertable)]
#[diesel(table_name = webhook_events, check_for_backend(diesel::pg::Pg))]
pub(crate) struct EventRow {
    id: Uuid,
    event_type: String,
    organization_id: Uuid,
    created_at: OffsetDateTime,
    body: String,
    replay_of: Option<Uuid>,
}

impl EventRow {
    pub(crate) fn from_domain(event: &Event) -> Self {
        Self {
            id: event.id.as_uuid(),
            event_type: event.event_type.as_str().to_owned(),
            organization_id: event.organization_id.as_uuid(),
            created_at: event.created_at.as_offset_datetime(),
            body: event.body.clone(),
            replay_of: event.replay_of.map(|e| e.as_uuid()),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::pg::Pg))]
struct EndpointRow {
    id: Uuid,
    organization_id: Uuid,
    url: String,
    events: Vec<String>,
    scope: String,
    status: String,
    description: Option<String>,
    signing_secret: String,
    consecutive_failures: i32,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

fn failures_to_db(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

impl EndpointRow {
    fn from_domain(endpoint: &WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.as_uuid(),
            organization_id: endpoint.organization_id.as_uuid(),
            url: endpoint.url.as_str().to_owned(),
            events: endpoint.events.names(),
            scope: endpoint.scope.as_str().to_owned(),
            status: endpoint.status.as_str().to_owned(),
            description: endpoint.description.clone(),
            signing_secret: endpoint.secret.expose().to_owned(),
            consecutive_failures: failures_to_db(endpoint.consecutive_failures),
            created_at: endpoint.created_at.as_offset_datetime(),
            updated_at: endpoint.updated_at.as_offset_datetime(),
        }
    }

    fn into_domain(self) -> Result<WebhookEndpoint, StoreError> {
        Ok(WebhookEndpoint {
            id: EndpointId::from_uuid(self.id),
            organization_id: OrganizationId::from_uuid(self.organization_id),
            url: WebhookUrl::from_stored(self.url),
            events: EventSelection::parse(&self.events)
                .map_err(|e| corrupt("endpoint events", e.message))?,
            scope: EndpointScope::parse(&self.scope)
                .ok_or_else(|| corrupt("endpoint scope", &self.scope))?,
            status: EndpointStatus::parse(&self.status)
                .ok_or_else(|| corrupt("endpoint status", &self.status))?,
            description: self.description,
            secret: SigningSecret::from_stored(self.signing_secret),
            consecutive_failures: u32::try_from(self.consecutive_failures)
                .map_err(|_| corrupt("endpoint failure count", self.consecutive_failures))?,
            created_at: Timestamp::from_offset_datetime(self.created_at),
            updated_at: Timestamp::from_offset_datetime(self.updated_at),
        })
    }
}

/// A delivery with `held` decided as it is read: pending, and the endpoint's owner or the
/// owner's parent suspended (the job queue holds its job for the same reason).
#[derive(QueryableByName)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
struct DeliveryRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    last_response_status: Option<i16>,
    last_attempt_at: Option<OffsetDateTime>,
    next_attempt_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    #[diesel(sql_type = Bool)]
    held: bool,
}

const SELECT_DELIVERIES: &str = "SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.status, \
       d.attempts, d.last_error, d.last_response_status, d.last_attempt_at, d.next_attempt_at, \
       d.created_at, \
       (d.status = 'pending' AND (o.status = 'suspended' OR p.status IS NOT DISTINCT FROM \
        'suspended')) AS held \
     FROM webhook_deliveries d \
     JOIN webhook_endpoints e ON e.id = d.endpoint_id \
     JOIN organizations o ON o.id = e.organization_id \
     LEFT JOIN organizations p ON p.id = o.parent_id";

impl DeliveryRow {
    fn into_domain(self) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            id: DeliveryId::from_uuid(self.id),
            endpoint_id: EndpointId::from_uuid(self.endpoint_id),
            event_id: EventId::from_uuid(self.event_id),
            event_type: EventType::parse(&self.event_type)
                .ok_or_else(|| corrupt("delivery event type", &self.event_type))?,
            status: DeliveryStatus::parse(&self.status)
                .ok_or_else(|| corrupt("delivery status", &self.status))?,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| corrupt("delivery attempts", self.attempts))?,
            last_error: self.last_error,
            last_response_status: self
                .last_response_status
                .map(|s| u16::try_from(s).map_err(|_| corrupt("response status", s)))
                .transpose()?,
            last_attempt_at: self.last_attempt_at.map(Timestamp::from_offset_datetime),
            next_attempt_at: self.next_attempt_at.map(Timestamp::from_offset_datetime),
            created_at: Timestamp::from_offset_datetime(self.created_at),
            held: self.held,
        })
    }
}

/// In an archive's transaction (API.md §4.9): the organization's endpoints are disabled and
/// their still-pending deliveries become `canceled` (their jobs, bound to it, are deleted by
/// `jobs::cancel_for`).
pub(crate) async fn cancel_pending_of_organization(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
    at: OffsetDateTime,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "UPDATE webhook_deliveries d SET status = 'canceled', next_attempt_at = NULL \
         FROM webhook_endpoints e \
         WHERE d.endpoint_id = e.id AND e.organization_id = $1 AND e.deleted_at IS NULL \
           AND d.status = 'pending'",
    )
    .bind::<SqlUuid, _>(organization)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE webhook_endpoints SET status = 'disabled', updated_at = $2 \
         WHERE organization_id = $1 AND deleted_at IS NULL AND status <> 'disabled'",
    )
    .bind::<SqlUuid, _>(organization)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await
    .map(drop)
}

async fn find_endpoint_with(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Option<EndpointRow>, diesel::result::Error> {
    webhook_endpoints::table
        .find(id)
        .filter(webhook_endpoints::deleted_at.is_null())
        .select(EndpointRow::as_select())
        .first(conn)
        .await
        .optional()
}

async fn find_delivery_with(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Option<DeliveryRow>, diesel::result::Error> {
    let found: Vec<DeliveryRow> = diesel::sql_query(format!("{SELECT_DELIVERIES} WHERE d.id = $1"))
        .bind::<SqlUuid, _>(id)
        .load(conn)
        .await?;
    Ok(found.into_iter().next())
}

#[derive(QueryableByName)]
struct UpdatedDelivery {
    #[diesel(sql_type = SqlUuid)]
    endpoint_id: Uuid,
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<EndpointInsert, StoreError> {
        let row = EndpointRow::from_domain(endpoint);
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // FOR SHARE, as for a key: an archive of the owner either committed before (and we
            // see it) or waits for this insert (and cancels what the endpoint gets).
            let status: Option<String> = organizations::table
                .find(row.organization_id)
                .select(organizations::status)
                .for_share()
                .first(conn)
                .await
                .optional()?;
            if matches!(status.as_deref(), None | Some("archived")) {
                return Ok(EndpointInsert::OrganizationClosed);
            }
            diesel::insert_into(webhook_endpoints::table)
                .values(&row)
                .execute(conn)
                .await?;
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await?;
            Ok(EndpointInsert::Inserted)
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn find_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut conn = self.conn().await?;
        find_endpoint_with(&mut conn, id.as_uuid())
            .await
            .map_err(from_diesel)?
            .map(EndpointRow::into_domain)
            .transpose()
    }

    async fn list_endpoints(
        &self,
        organization: OrganizationId,
        page: PageRequest,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        use webhook_endpoints::dsl;
        let mut query = webhook_endpoints::table
            .filter(dsl::organization_id.eq(organization.as_uuid()))
            .filter(dsl::deleted_at.is_null())
            .select(EndpointRow::as_select())
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
            .map(EndpointRow::into_domain)
            .collect()
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        read_status: EndpointStatus,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<bool, StoreError> {
        use webhook_endpoints::dsl;
        let row = EndpointRow::from_domain(endpoint);
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            let written = diesel::update(
                webhook_endpoints::table
                    .find(row.id)
                    .filter(dsl::deleted_at.is_null())
                    .filter(dsl::status.eq(read_status.as_str())),
            )
            .set((
                dsl::url.eq(&row.url),
                dsl::events.eq(&row.events),
                dsl::description.eq(&row.description),
                dsl::status.eq(&row.status),
                dsl::consecutive_failures.eq(row.consecutive_failures),
                dsl::updated_at.eq(row.updated_at),
            ))
            .execute(conn)
            .await?;
            if written == 0 {
                return Ok(false);
            }
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await?;
            Ok(true)
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn delete_endpoint(
        &self,
        id: EndpointId,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            let deleted = diesel::update(
                webhook_endpoints::table
                    .find(id.as_uuid())
                    .filter(webhook_endpoints::deleted_at.is_null()),
            )
            .set(webhook_endpoints::deleted_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
            if deleted == 0 {
                return Ok(false);
            }
            // Its pending deliveries are canceled and their jobs (same ids) deleted; a worker
            // holding one of them then finds its lease gone and records nothing.
            diesel::sql_query(
                "WITH canceled AS ( \
                   UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL \
                   WHERE endpoint_id = $1 AND status = 'pending' RETURNING id) \
                 DELETE FROM jobs WHERE kind = $2 AND id IN (SELECT id FROM canceled)",
            )
            .bind::<SqlUuid, _>(id.as_uuid())
            .bind::<Text, _>(DELIVER)
            .execute(conn)
            .await?;
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await?;
            Ok(true)
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        page: PageRequest,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut conn = self.conn().await?;
        let limit = sql_limit(page.limit);
        let rows: Vec<DeliveryRow> = match page.after {
            None => {
                diesel::sql_query(format!(
                    "{SELECT_DELIVERIES} WHERE d.endpoint_id = $1 \
                     ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
                ))
                .bind::<SqlUuid, _>(endpoint.as_uuid())
                .bind::<BigInt, _>(limit)
                .load(&mut conn)
                .await
            }
            Some(after) => {
                // `<=` is the index range on (endpoint_id, created_at desc, id desc); the rest
                // breaks ties.
                diesel::sql_query(format!(
                    "{SELECT_DELIVERIES} WHERE d.endpoint_id = $1 AND d.created_at <= $3 \
                       AND (d.created_at < $3 OR d.id < $4) \
                     ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
                ))
                .bind::<SqlUuid, _>(endpoint.as_uuid())
                .bind::<BigInt, _>(limit)
                .bind::<Timestamptz, _>(after.created_at.as_offset_datetime())
                .bind::<SqlUuid, _>(after.id)
                .load(&mut conn)
                .await
            }
        }
        .map_err(from_diesel)?;
        rows.into_iter().map(DeliveryRow::into_domain).collect()
    }

    async fn find_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let mut conn = self.conn().await?;
        find_delivery_with(&mut conn, id.as_uuid())
            .await
            .map_err(from_diesel)?
            .map(DeliveryRow::into_domain)
            .transpose()
    }

    async fn event_body(&self, id: EventId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        webhook_events::table
            .find(id.as_uuid())
            .select(webhook_events::body)
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)
    }

    async fn record(&self, trail: &Trail, done: Option<Completion>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn pending_attempt(&self, id: DeliveryId) -> Result<Option<PendingAttempt>, StoreError> {
        let mut conn = self.conn().await?;
        let Some(delivery) = find_delivery_with(&mut conn, id.as_uuid())
            .await
            .map_err(from_diesel)?
        else {
            return Ok(None);
        };
        let Some(endpoint) = find_endpoint_with(&mut conn, delivery.endpoint_id)
            .await
            .map_err(from_diesel)?
        else {
            return Ok(None);
        };
        let body: Option<String> = webhook_events::table
            .find(delivery.event_id)
            .select(webhook_events::body)
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?;
        let Some(body) = body else {
            return Err(corrupt("delivery", "its event is missing"));
        };
        Ok(Some(PendingAttempt {
            delivery: delivery.into_domain()?,
            endpoint: endpoint.into_domain()?,
            body,
        }))
    }

    async fn finish_attempt(
        &self,
        lease: &Lease,
        record: &AttemptRecord,
    ) -> Result<bool, StoreError> {
        // Not a delivery's job: nothing of ours to record.
        let Ok(delivery) = DeliveryId::parse(&lease.job.payload).map(|d| d.as_uuid()) else {
            return Ok(false);
        };
        let job = lease.job.id.as_uuid();
        let at = record.at.as_offset_datetime();
        let next_attempt_at = record.next_attempt_at.map(|t| t.as_offset_datetime());
        let response_status = record
            .response_status
            .map(|s| {
                i16::try_from(s)
                    .map_err(|_| StoreError::Internal(format!("response status {s} is not HTTP")))
            })
            .transpose()?;
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // The job's row lock, and only while the lease is still this worker's: a worker
            // whose lease ran out (and was claimed again), or whose delivery was canceled by a
            // delete or an archive, writes nothing.
            let held: Option<Uuid> = jobs::table
                .find(job)
                .filter(jobs::token.eq(lease.token))
                .select(jobs::id)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            if held.is_none() {
                return Ok(false);
            }
            // The delivery: its status, error and next due time always; the attempt count, the
            // instant and the receiver's answer only when an attempt was made.
            let updated: Vec<UpdatedDelivery> = diesel::sql_query(
                "UPDATE webhook_deliveries SET status = $2, last_error = $3, \
                   next_attempt_at = $4, \
                   attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END, \
                   last_attempt_at = CASE WHEN $5 THEN $6 ELSE last_attempt_at END, \
                   last_response_status = CASE WHEN $5 THEN $7 ELSE last_response_status END \
                 WHERE id = $1 RETURNING endpoint_id",
            )
            .bind::<SqlUuid, _>(delivery)
            .bind::<Text, _>(record.status.as_str())
            .bind::<Nullable<Text>, _>(record.error.as_deref())
            .bind::<Nullable<Timestamptz>, _>(next_attempt_at)
            .bind::<Bool, _>(record.attempted)
            .bind::<Timestamptz, _>(at)
            .bind::<Nullable<SmallInt>, _>(response_status)
            .load(conn)
            .await?;
            let endpoint = updated.first().map(|u| u.endpoint_id);
            if let (Some(endpoint), true) = (endpoint, record.attempted) {
                if record.status == DeliveryStatus::Succeeded {
                    diesel::update(webhook_endpoints::table.find(endpoint))
                        .set(webhook_endpoints::consecutive_failures.eq(0))
                        .execute(conn)
                        .await?;
                } else {
                    // One more failure in a row; the one that reaches the limit pauses an
                    // enabled endpoint.
                    diesel::sql_query(
                        "UPDATE webhook_endpoints SET \
                           consecutive_failures = consecutive_failures + 1, \
                           status = CASE WHEN status = 'enabled' \
                                          AND consecutive_failures + 1 >= $2 \
                                         THEN 'auto_paused' ELSE status END \
                         WHERE id = $1",
                    )
                    .bind::<SqlUuid, _>(endpoint)
                    .bind::<Integer, _>(failures_to_db(AUTO_PAUSE_AFTER))
                    .execute(conn)
                    .await?;
                }
            }
            // The job: put back for the retry, or done (also when the delivery is gone).
            let job_row = jobs::table.find(job).filter(jobs::token.eq(lease.token));
            match (record.status, next_attempt_at, endpoint) {
                (DeliveryStatus::Pending, Some(run_at), Some(_)) => {
                    diesel::update(job_row)
                        .set((
                            jobs::token.eq(None::<Uuid>),
                            jobs::lease_until.eq(None::<OffsetDateTime>),
                            jobs::run_at.eq(run_at),
                            // Scheduled again: a hold from now on is a new one.
                            jobs::was_held.eq(false),
                        ))
                        .execute(conn)
                        .await?;
                }
                _ => {
                    diesel::delete(job_row).execute(conn).await?;
                }
            }
            Ok(true)
        })
        .await
        .map_err(from_diesel)
    }
}
