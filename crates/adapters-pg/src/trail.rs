//! Writing a [`Trail`] inside the transaction of the effect it records: its audit events, its
//! webhook events (the outbox) and, for each webhook event, the fan-out — one delivery per
//! endpoint that wants it, each scheduled as a [`DELIVER`] job bound to the endpoint's owner.
//!
//! The fan-out is set-based: one `INSERT … SELECT` for the events that go to whoever subscribes
//! and one for the events with a single target (a ping, a replay), whatever the number of events
//! or endpoints. A delivery's job has the delivery's id (`webhook_deliveries.id = jobs.id`), so
//! cancelling a delivery deletes its job by primary key.
//!
//! The owners of the endpoints an event goes to are read `FOR SHARE`: an archive of an owner (an
//! UPDATE of its row, which cancels its pending deliveries) either commits first — and the
//! archived owner gets no delivery — or waits for this transaction and cancels what it created.

use diesel::sql_types::{Array, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::trail::Trail;
use domain::webhooks::DELIVER;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::AuditRow;
use crate::schema::{audit_events, webhook_events};
use crate::webhooks::EventRow;

/// In an effect's transaction: writes everything `trail` records. The caller passes the trail as
/// the effect resolves it ([`Trail::resolved`] for a change that swept credits).
pub(crate) async fn write(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
) -> Result<(), diesel::result::Error> {
    if !trail.audit.is_empty() {
        let rows: Vec<AuditRow> = trail.audit.iter().map(AuditRow::from_domain).collect();
        diesel::insert_into(audit_events::table)
            .values(&rows)
            .execute(conn)
            .await?;
    }
    if trail.events.is_empty() {
        return Ok(());
    }
    let rows: Vec<EventRow> = trail.events.iter().map(EventRow::from_domain).collect();
    diesel::insert_into(webhook_events::table)
        .values(&rows)
        .execute(conn)
        .await?;

    let mut broadcast = Columns::default();
    let mut targeted = Columns::default();
    let mut targets: Vec<(Uuid, Uuid)> = Vec::new();
    for event in &trail.events {
        match event.target {
            None => broadcast.push(event),
            Some((endpoint, delivery)) => {
                targeted.push(event);
                targets.push((endpoint.as_uuid(), delivery.as_uuid()));
            }
        }
    }
    if !broadcast.ids.is_empty() {
        fan_out(conn, &broadcast).await?;
    }
    if !targeted.ids.is_empty() {
        let (endpoints, deliveries): (Vec<Uuid>, Vec<Uuid>) = targets.into_iter().unzip();
        deliver_to_targets(conn, &targeted, &endpoints, &deliveries).await?;
    }
    Ok(())
}

/// Webhook events as parallel arrays, for `unnest`.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    types: Vec<String>,
    organizations: Vec<Uuid>,
    created_at: Vec<OffsetDateTime>,
}

impl Columns {
    fn push(&mut self, event: &domain::webhooks::Event) {
        self.ids.push(event.id.as_uuid());
        self.types.push(event.event_type.as_str().to_owned());
        self.organizations.push(event.organization_id.as_uuid());
        self.created_at.push(event.created_at.as_offset_datetime());
    }
}

/// Schedules the deliveries just inserted by the CTE `d` (id, endpoint_id, created_at): one job
/// each, same id, bound to the endpoint's owner, due at the event's creation, its payload the
/// delivery id as `DeliveryId` writes it.
const SCHEDULE_DELIVERIES: &str =
    "INSERT INTO jobs (id, organization_id, kind, payload, run_at, queue) \
     SELECT d.id, e.organization_id, $5, 'whd_' || d.id::text, d.created_at, \
            'whe_' || e.id::text \
     FROM d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
     ORDER BY d.created_at, d.event_id";

/// One delivery per event and endpoint that wants it (`WebhookEndpoint::wants`): enabled, not
/// deleted, subscribed to the type (never `test.ping`), owned by the event's organization — or
/// by its parent, with scope `all_children` — and that owner not archived.
async fn fan_out(
    conn: &mut AsyncPgConnection,
    events: &Columns,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(format!(
        "WITH ev (id, event_type, organization_id, created_at) AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[])), \
         d AS ( \
           INSERT INTO webhook_deliveries \
             (id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at, created_at) \
           SELECT gen_random_uuid(), e.id, ev.id, ev.event_type, 'pending', 0, ev.created_at, \
                  ev.created_at \
           FROM ev \
           JOIN organizations s ON s.id = ev.organization_id \
           JOIN webhook_endpoints e ON e.organization_id IN (s.id, s.parent_id) \
           JOIN organizations o ON o.id = e.organization_id \
           WHERE e.deleted_at IS NULL AND e.status = 'enabled' \
             AND ev.event_type <> 'test.ping' \
             AND (e.organization_id = s.id OR e.scope = 'all_children') \
             AND (e.events = ARRAY['*'] OR ev.event_type = ANY (e.events)) \
             AND o.status <> 'archived' \
           FOR SHARE OF o \
           RETURNING id, endpoint_id, created_at, event_id) \
         {SCHEDULE_DELIVERIES}"
    ))
    .bind::<Array<SqlUuid>, _>(&events.ids)
    .bind::<Array<Text>, _>(&events.types)
    .bind::<Array<SqlUuid>, _>(&events.organizations)
    .bind::<Array<Timestamptz>, _>(&events.created_at)
    .bind::<Text, _>(DELIVER)
    .execute(conn)
    .await
    .map(drop)
}

/// The one delivery of each targeted event (a ping, a replay), under the id the domain chose, if
/// its endpoint still exists and its owner is not archived; whatever the endpoint subscribes to.
async fn deliver_to_targets(
    conn: &mut AsyncPgConnection,
    events: &Columns,
    endpoints: &[Uuid],
    deliveries: &[Uuid],
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(format!(
        "WITH t (id, event_type, created_at, endpoint_id, delivery_id) AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $4::timestamptz[], $3::uuid[], \
                                $6::uuid[])), \
         d AS ( \
           INSERT INTO webhook_deliveries \
             (id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at, created_at) \
           SELECT t.delivery_id, e.id, t.id, t.event_type, 'pending', 0, t.created_at, \
                  t.created_at \
           FROM t \
           JOIN webhook_endpoints e ON e.id = t.endpoint_id \
           JOIN organizations o ON o.id = e.organization_id \
           WHERE e.deleted_at IS NULL AND o.status <> 'archived' \
           FOR SHARE OF o \
           RETURNING id, endpoint_id, created_at, event_id) \
         {SCHEDULE_DELIVERIES}"
    ))
    .bind::<Array<SqlUuid>, _>(&events.ids)
    .bind::<Array<Text>, _>(&events.types)
    .bind::<Array<SqlUuid>, _>(endpoints)
    .bind::<Array<Timestamptz>, _>(&events.created_at)
    .bind::<Text, _>(DELIVER)
    .bind::<Array<SqlUuid>, _>(deliveries)
    .execute(conn)
    .await
    .map(drop)
}
