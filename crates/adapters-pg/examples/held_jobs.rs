//! Suspend and resume cost O(1) in the amount of held work (API.md §3): measured, not asserted.
//!
//! For a child with 10 and with 100,000 pending jobs (all due, so all held while it is
//! suspended), times suspend and resume through `OrganizationStore::update` — with the audit and
//! webhook trail a real suspend writes — and prints their latencies and the ratio between the two
//! sizes. Also times a worker's claims while the jobs are held (where holding is decided: the
//! first claims park the held jobs, later ones skip them), and the first claim after resume.
//! Each size gets a fresh database; suspend/resume pairs alternate between them, round after
//! round, so that the machine's noise falls on both alike.
//!
//! Then a claim's cost with 10 and with 10,000 suspended organizations that have nothing to
//! run: a claim reads them (to park what they hold) but locks none of them.
//!
//!     cargo run --release -p adapters-pg --features testing --example held_jobs
//!
//! Needs PostgreSQL as the tests do (`scripts/pg-test-cluster.sh`, `TEST_DATABASE_ADMIN_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use adapters_pg::testing::TestDatabase;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::audit::{Actor, AuditEvent, AuditEventId, AuditEventType};
use domain::jobs::JOB_LEASE;
use domain::organization::{
    Metadata, Organization, OrganizationName, OrganizationStatus, Revision,
};
use domain::ports::{JobQueue, OrganizationStore, Write};
use domain::trail::Trail;
use domain::webhooks::{Event, EventId, EventType};
use domain::{OrganizationId, Timestamp};
use uuid::Uuid;

const SIZES: [i64; 2] = [10, 100_000];
const ROUNDS: usize = 200;
const KIND: &str = "bench.held";

fn now() -> Timestamp {
    Timestamp::from_offset_datetime(time::OffsetDateTime::now_utc())
}

fn organization(parent: Option<OrganizationId>) -> Organization {
    let at = now();
    Organization {
        id: OrganizationId::from_uuid(Uuid::new_v4()),
        parent_id: parent,
        name: OrganizationName::parse("Held jobs").unwrap(),
        status: OrganizationStatus::Active,
        metadata: Metadata::default(),
        billing_email: None,
        created_at: at,
        updated_at: at,
        revision: Revision::INITIAL,
    }
}

/// What a real suspend or resume writes besides the organization: one audit and one webhook
/// event.
fn trail(org: &Organization, kind: EventType, audit: AuditEventType) -> Trail {
    let at = org.updated_at;
    let random = *Uuid::new_v4().as_bytes();
    let mut ten = [0u8; 10];
    ten.copy_from_slice(&random[..10]);
    Trail::none()
        .with_audit(AuditEvent {
            id: AuditEventId::new(at, ten),
            event_type: audit,
            occurred_at: at,
            request_id: None,
            organization_id: org.id,
            actor: Actor::Operator,
            data: "{}".to_owned(),
        })
        .with_event(Event {
            id: EventId::new(at, ten),
            event_type: kind,
            organization_id: org.id,
            created_at: at,
            body: "{}".to_owned(),
            target: None,
            replay_of: None,
        })
}

struct Figures {
    suspend: Vec<Duration>,
    resume: Vec<Duration>,
    /// Claims while every job is held, once the first claims have parked them and the table's
    /// statistics caught up.
    held_claim: Vec<Duration>,
    /// The same, right after parking, before autovacuum refreshed the statistics.
    claim_before_vacuum: Vec<Duration>,
    /// The first claims of a suspension, which park what they meet.
    parking_claims: Duration,
    /// The first claim after resume: unparks the jobs and claims some.
    claim_after_resume: Duration,
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn suspend(store: &adapters_pg::PgStore, current: &Organization) -> (Organization, Duration) {
    let suspended = Organization {
        status: OrganizationStatus::Suspended { since: now() },
        updated_at: now(),
        revision: current.revision.next(),
        ..current.clone()
    };
    let trail_of = trail(
        &suspended,
        EventType::OrganizationSuspended,
        AuditEventType::OrganizationSuspended,
    );
    let started = Instant::now();
    let write = store
        .update(&suspended, current.revision, &trail_of, None)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(write, Write::Applied);
    (suspended, took)
}

async fn resume(store: &adapters_pg::PgStore, current: &Organization) -> (Organization, Duration) {
    let resumed = Organization {
        status: OrganizationStatus::Active,
        updated_at: now(),
        revision: current.revision.next(),
        ..current.clone()
    };
    let trail_of = trail(
        &resumed,
        EventType::OrganizationResumed,
        AuditEventType::OrganizationResumed,
    );
    let started = Instant::now();
    let write = store
        .update(&resumed, current.revision, &trail_of, None)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(write, Write::Applied);
    (resumed, took)
}

async fn claim(store: &adapters_pg::PgStore) -> (usize, Duration) {
    let started = Instant::now();
    let claimed = store
        .claim(vec![KIND.to_owned()], now(), now().plus(JOB_LEASE), 10)
        .await
        .unwrap();
    (claimed.len(), started.elapsed())
}

/// A fresh database with a parent and a child, and `held` jobs of the child, all due.
struct Setup {
    _database: TestDatabase,
    store: adapters_pg::PgStore,
    conn: AsyncPgConnection,
    child: Organization,
}

async fn prepare(held: i64) -> Setup {
    let database = TestDatabase::create().await.expect("a test database");
    let store = database.store();
    let parent = organization(None);
    let child = organization(Some(parent.id));
    for org in [&parent, &child] {
        store.insert(org, &Trail::none(), None).await.unwrap();
    }
    // The held work, written in bulk: due an hour ago, bound to the child.
    let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
    diesel::sql_query(
        "INSERT INTO jobs (id, organization_id, kind, payload, run_at) \
         SELECT gen_random_uuid(), $1, 'bench.held', n::text, now() - interval '1 hour' \
         FROM generate_series(1, $2) AS n",
    )
    .bind::<SqlUuid, _>(child.id.as_uuid())
    .bind::<BigInt, _>(held)
    .execute(&mut conn)
    .await
    .unwrap();
    // Vacuumed now, so that autovacuum, which the bulk insert calls for, does not run while one
    // size is measured and not the other.
    diesel::sql_query("VACUUM ANALYZE jobs")
        .execute(&mut conn)
        .await
        .unwrap();
    Setup {
        _database: database,
        store,
        conn,
        child,
    }
}

/// Suspend/resume pairs on every setup in turn, round after round, so that whatever else the
/// machine does falls on every size alike; the first 20 rounds warm the pools and are not
/// counted. Leaves each child active, at its latest revision.
async fn suspend_resume_interleaved(setups: &mut [Setup]) -> Vec<(Vec<Duration>, Vec<Duration>)> {
    let mut times = vec![(Vec::new(), Vec::new()); setups.len()];
    for round in 0..ROUNDS + 20 {
        for (setup, (suspends, resumes)) in setups.iter_mut().zip(times.iter_mut()) {
            let (suspended, s) = suspend(&setup.store, &setup.child).await;
            let (resumed, r) = resume(&setup.store, &suspended).await;
            setup.child = resumed;
            if round >= 20 {
                suspends.push(s);
                resumes.push(r);
            }
        }
    }
    times
}

/// A suspension with a worker claiming: the first claims park the held jobs, the rest skip
/// them at no cost; then resume, and the first claim.
async fn claims(
    setup: &mut Setup,
    suspend_times: Vec<Duration>,
    resume_times: Vec<Duration>,
) -> Figures {
    let store = &setup.store;
    let (suspended, _) = suspend(store, &setup.child).await;
    let started = Instant::now();
    for _ in 0..30 {
        let (n, _) = claim(store).await;
        assert_eq!(n, 0, "held jobs are never claimed");
    }
    let parking_claims = started.elapsed();
    let mut claim_before_vacuum = Vec::new();
    for _ in 0..20 {
        let (n, took) = claim(store).await;
        assert_eq!(n, 0, "held jobs are never claimed");
        claim_before_vacuum.push(took);
    }
    // What autovacuum does shortly after so many rows changed (the jobs table asks for it at 2 %).
    diesel::sql_query("VACUUM ANALYZE jobs")
        .execute(&mut setup.conn)
        .await
        .unwrap();
    let mut held_claim = Vec::new();
    for _ in 0..100 {
        let (n, took) = claim(store).await;
        assert_eq!(n, 0, "held jobs are never claimed");
        held_claim.push(took);
    }
    let (_, _) = resume(store, &suspended).await;
    let (n, claim_after_resume) = claim(store).await;
    assert_eq!(n, 10, "after resume the jobs run at once");
    Figures {
        suspend: suspend_times,
        resume: resume_times,
        held_claim,
        claim_before_vacuum,
        parking_claims,
        claim_after_resume,
    }
}

/// The p50 of 100 claims (after 20 to warm up) with `suspended` suspended top-level
/// organizations in the store, none of which has a job.
async fn claim_among_suspended(suspended: i64) -> Duration {
    let database = TestDatabase::create().await.expect("a test database");
    let store = database.store();
    let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
    diesel::sql_query(
        "INSERT INTO organizations (id, parent_id, name, status, suspended_at, metadata, \
           created_at, updated_at, revision) \
         SELECT gen_random_uuid(), NULL, 'Suspended ' || n, 'suspended', now(), '{}', now(), \
           now(), 1 \
         FROM generate_series(1, $1) AS n",
    )
    .bind::<BigInt, _>(suspended)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("VACUUM ANALYZE organizations")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut times = Vec::new();
    for round in 0..120 {
        let (n, took) = claim(&store).await;
        assert_eq!(n, 0, "there is nothing to claim");
        if round >= 20 {
            times.push(took);
        }
    }
    percentile(&times, 0.5)
}

#[tokio::main]
async fn main() {
    let mut setups = Vec::new();
    for held in SIZES {
        setups.push(prepare(held).await);
    }
    let times = suspend_resume_interleaved(&mut setups).await;
    let mut results = Vec::new();
    for ((held, setup), (suspends, resumes)) in SIZES.into_iter().zip(&mut setups).zip(times) {
        results.push((held, claims(setup, suspends, resumes).await));
    }
    println!(
        "{ROUNDS} suspend/resume pairs per size; latency in ms (p50 / p99), ratio = size / smallest"
    );
    let (_, base) = &results[0];
    for (held, figures) in &results {
        let row = |name: &str, samples: &[Duration], baseline: &[Duration]| {
            let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
            let ratio = ms(p50) / ms(percentile(baseline, 0.5));
            println!(
                "  {held:>7} held jobs  {name:<22} p50 {:>7.3}  p99 {:>7.3}  p50 ratio {ratio:>5.2}x",
                ms(p50),
                ms(p99)
            );
        };
        row("suspend", &figures.suspend, &base.suspend);
        row("resume", &figures.resume, &base.resume);
        row(
            "claim held, pre-vacuum",
            &figures.claim_before_vacuum,
            &base.claim_before_vacuum,
        );
        row("claim while held", &figures.held_claim, &base.held_claim);
        println!(
            "  {held:>7} held jobs  first 30 claims of the suspension (parking): {:.1} ms in all; first claim after resume (unparking): {:.1} ms",
            ms(figures.parking_claims),
            ms(figures.claim_after_resume)
        );
    }
    let few = claim_among_suspended(10).await;
    let many = claim_among_suspended(10_000).await;
    println!(
        "claim with 10 vs 10,000 suspended organizations (nothing to run): p50 {:.3} -> {:.3} ms ({:.2}x)",
        ms(few),
        ms(many),
        ms(many) / ms(few)
    );
}
