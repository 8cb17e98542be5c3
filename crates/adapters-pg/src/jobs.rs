//! [`JobQueue`] on PostgreSQL. A claim picks due jobs with `FOR UPDATE SKIP LOCKED` (so
//! concurrent workers never take the same job) and skips those of a suspended organization or of
//! a child of one (held, decided here: suspend writes one row).
//!
//! So that a claim never walks over held jobs again and again (100,000 of them would cost every
//! claim half a second), a claim first parks the held jobs it meets and unparks the jobs of
//! organizations resumed since: claims read unparked jobs only, through a partial index. Suspend
//! and resume still write one row each; the parking is the workers' own bookkeeping.

use async_trait::async_trait;
use diesel::prelude::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, QueryableByName,
    Selectable, SelectableHelper,
};
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::jobs::{Job, JobId, Lease};
use domain::ports::{JobQueue, StoreError};
use domain::{OrganizationId, Timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{corrupt, from_diesel};
use crate::schema::jobs;
use crate::{sql_limit, PgStore};

#[derive(Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
struct JobRow {
    id: Uuid,
    organization_id: Option<Uuid>,
    kind: String,
    payload: String,
    run_at: OffsetDateTime,
    attempts: i32,
    token: Option<Uuid>,
    lease_until: Option<OffsetDateTime>,
    queue: Option<String>,
    was_held: bool,
}

impl JobRow {
    fn from_domain(job: &Job) -> Self {
        Self {
            id: job.id.as_uuid(),
            organization_id: job.organization_id.map(|o| o.as_uuid()),
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            run_at: job.run_at.as_offset_datetime(),
            attempts: i32::try_from(job.attempts).unwrap_or(i32::MAX),
            token: None,
            lease_until: None,
            queue: job.queue.clone(),
            was_held: false,
        }
    }

    fn into_domain(self) -> Result<Job, StoreError> {
        Ok(Job {
            id: JobId::from_uuid(self.id),
            organization_id: self.organization_id.map(OrganizationId::from_uuid),
            kind: self.kind,
            payload: self.payload,
            run_at: Timestamp::from_offset_datetime(self.run_at),
            attempts: u32::try_from(self.attempts)
                .map_err(|_| corrupt("job attempts", self.attempts))?,
            queue: self.queue,
        })
    }
}

/// In another write's transaction: schedules `job`.
pub(crate) async fn enqueue_with(
    conn: &mut AsyncPgConnection,
    job: &Job,
) -> Result<(), diesel::result::Error> {
    diesel::insert_into(jobs::table)
        .values(JobRow::from_domain(job))
        .execute(conn)
        .await
        .map(drop)
}

/// In an archive's transaction: cancels the organization's jobs, except the expiry of
/// reservations still held — those must still end, and what they release goes to the parent.
pub(crate) async fn cancel_for(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
) -> Result<(), diesel::result::Error> {
    diesel::delete(
        jobs::table
            .filter(jobs::organization_id.eq(organization))
            .filter(jobs::kind.ne(domain::jobs::EXPIRE_RESERVATION)),
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Parks up to 5,000 due, unclaimed jobs of suspended organizations (or of children of suspended
/// ones), and notes their organizations for [`UNPARK_RESUMED`]. Driven from the suspended
/// organizations (a partial index) to their unparked jobs (another), so it reads nothing once
/// their jobs are parked, however many. It share-locks the suspended organizations it parks
/// jobs of, and only those: a resume waits for a parking in flight, so the unparking that follows
/// the resume sees what it parked (and a parking that meets a resumed organization re-reads it
/// and parks nothing). Locking every suspended organization on every claim cost a row lock (a
/// heap write) per suspended organization per claim — with 10,000 of them a claim's p50 was
/// 3.09 ms, 2.53 ms without (`examples/held_jobs.rs`) — and a stream of such claims could hold
/// a resume off as reservations once held off a suspend (`status_latch.rs`).
const PARK_HELD: &str = "WITH suspended AS MATERIALIZED ( \
       SELECT o.id FROM organizations o WHERE o.status = 'suspended'), \
     held_organizations AS ( \
       SELECT id, id AS suspended_id FROM suspended \
       UNION \
       SELECT c.id, c.parent_id FROM organizations c \
       WHERE c.parent_id IN (SELECT id FROM suspended)), \
     candidates AS ( \
       SELECT j.id, h.suspended_id FROM held_organizations h CROSS JOIN LATERAL ( \
         SELECT id FROM jobs j \
         WHERE NOT j.parked AND j.organization_id = h.id AND j.run_at <= $1 \
           AND (j.token IS NULL OR j.lease_until <= $1) \
         LIMIT 5000) j \
       LIMIT 5000), \
     still_suspended AS MATERIALIZED ( \
       SELECT o.id FROM organizations o \
       WHERE o.id IN (SELECT suspended_id FROM candidates) AND o.status = 'suspended' \
       FOR SHARE), \
     held AS ( \
       SELECT id FROM jobs \
       WHERE id IN (SELECT id FROM candidates \
                    WHERE suspended_id IN (SELECT id FROM still_suspended)) \
         AND NOT parked \
       FOR UPDATE SKIP LOCKED), \
     parked AS ( \
       UPDATE jobs SET parked = true, was_held = true WHERE id IN (SELECT id FROM held) \
       RETURNING organization_id) \
     INSERT INTO parked_organizations (organization_id) \
     SELECT DISTINCT organization_id FROM parked \
     ON CONFLICT DO NOTHING";

/// Unparks up to 10,000 jobs of the parked organizations that are no longer held, and forgets an
/// organization once none of its jobs is parked. A job parked by a claim that raced the resume is
/// noted with its organization in the same change, so a later claim unparks it. (The queue rule
/// keeps a queue's jobs in order whichever of them are unparked first.) Driven from the parked
/// organizations, so it reads no job while they are all still held.
const UNPARK_RESUMED: &str = "WITH free AS ( \
       SELECT po.organization_id FROM parked_organizations po \
       JOIN organizations o ON o.id = po.organization_id \
       LEFT JOIN organizations p ON p.id = o.parent_id \
       WHERE o.status <> 'suspended' AND (p.status IS NULL OR p.status <> 'suspended') \
       FOR UPDATE OF po SKIP LOCKED), \
     batch AS ( \
       SELECT j.id FROM free f CROSS JOIN LATERAL ( \
         SELECT id FROM jobs j WHERE j.parked AND j.organization_id = f.organization_id \
         LIMIT 10000) j \
       LIMIT 10000), \
     unparked AS ( \
       UPDATE jobs SET parked = false WHERE id IN (SELECT id FROM batch)) \
     DELETE FROM parked_organizations po \
     WHERE po.organization_id IN (SELECT organization_id FROM free) \
       AND NOT EXISTS ( \
         SELECT 1 FROM jobs j WHERE j.parked AND j.organization_id = po.organization_id \
           AND j.id NOT IN (SELECT id FROM batch))";

#[async_trait]
impl JobQueue for PgStore {
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        enqueue_with(&mut conn, &job).await.map_err(from_diesel)
    }

    async fn claim(
        &self,
        kinds: Vec<String>,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut conn = self.conn().await?;
        let now_at = now.as_offset_datetime();
        diesel::sql_query(UNPARK_RESUMED)
            .execute(&mut conn)
            .await
            .map_err(from_diesel)?;
        diesel::sql_query(PARK_HELD)
            .bind::<Timestamptz, _>(now_at)
            .execute(&mut conn)
            .await
            .map_err(from_diesel)?;
        let claimed: Vec<JobRow> = diesel::sql_query(
            "WITH claimed AS ( \
             UPDATE jobs SET token = gen_random_uuid(), lease_until = $3, attempts = attempts + 1 \
             WHERE id IN ( \
               SELECT j.id FROM jobs j \
               LEFT JOIN organizations o ON o.id = j.organization_id \
               LEFT JOIN organizations p ON p.id = o.parent_id \
               WHERE NOT j.parked AND j.kind = ANY($1) AND j.run_at <= $2 \
                 AND (j.token IS NULL OR j.lease_until <= $2) \
                 AND (o.status IS NULL OR o.status <> 'suspended') \
                 AND (p.status IS NULL OR p.status <> 'suspended') \
                 AND (j.queue IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM jobs e WHERE e.queue = j.queue AND e.id <> j.id \
                     AND ((e.run_at, e.seq) < (j.run_at, j.seq) \
                          OR (e.token IS NOT NULL AND e.lease_until > $2)))) \
               ORDER BY j.run_at, j.seq LIMIT $4 \
               FOR UPDATE OF j SKIP LOCKED) \
             RETURNING id, organization_id, kind, payload, run_at, attempts, token, lease_until, \
                       queue, seq, was_held) \
             SELECT id, organization_id, kind, payload, run_at, attempts, token, lease_until, queue, \
                    was_held \
             FROM claimed ORDER BY run_at, seq",
        )
        .bind::<Array<Text>, _>(&kinds)
        .bind::<Timestamptz, _>(now_at)
        .bind::<Timestamptz, _>(lease_until.as_offset_datetime())
        .bind::<BigInt, _>(sql_limit(limit))
        .load(&mut conn)
        .await
        .map_err(from_diesel)?;
        // In the order they are due: the worker attempts them in turn.
        let leases: Vec<Lease> = claimed
            .into_iter()
            .map(|row| {
                let token = row.token.ok_or_else(|| corrupt("job claim", "no token"))?;
                let was_held = row.was_held;
                Ok(Lease {
                    job: row.into_domain()?,
                    token,
                    was_held,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(leases)
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(
            jobs::table
                .find(lease.job.id.as_uuid())
                .filter(jobs::token.eq(lease.token)),
        )
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(from_diesel)
    }

    async fn retry(&self, lease: &Lease, run_at: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::update(
            jobs::table
                .find(lease.job.id.as_uuid())
                .filter(jobs::token.eq(lease.token)),
        )
        .set((
            jobs::token.eq(None::<Uuid>),
            jobs::lease_until.eq(None::<OffsetDateTime>),
            jobs::run_at.eq(run_at.as_offset_datetime()),
            // Scheduled again: a hold from now on is a new one.
            jobs::was_held.eq(false),
        ))
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(from_diesel)
    }

    async fn pending(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut conn = self.conn().await?;
        jobs::table
            .find(id.as_uuid())
            .select(JobRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?
            .map(JobRow::into_domain)
            .transpose()
    }
}
