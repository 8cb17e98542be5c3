//! Contract cases for the job queue (API.md §8): due jobs are claimed once, an abandoned claim is
//! claimed again, an organization's jobs are held while it (or its parent) is suspended and
//! cancelled when it is archived, and concurrent workers never share a job.

use domain::trail::Trail;
use std::collections::HashSet;
use std::sync::Arc;

use domain::jobs::{Job, JobId, EXPIRE_RESERVATION};
use domain::organization::Organization;
use domain::ports::Write;
use domain::OrganizationId;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::*;
use crate::reservations::job_id;
use crate::Stores;

const KIND: &str = "contract.work";

fn job(org: Option<OrganizationId>, run_at: i64) -> Job {
    Job {
        id: JobId::from_uuid(Uuid::new_v4()),
        organization_id: org,
        kind: KIND.to_owned(),
        payload: format!("payload {run_at}"),
        run_at: at(run_at),
        attempts: 0,
        queue: None,
    }
}

fn kinds() -> Vec<String> {
    vec![KIND.to_owned()]
}

async fn family(s: &Stores) -> (Organization, Organization) {
    family_at(s, at(1)).await
}

async fn claim_ids(s: &Stores, now: i64) -> Vec<JobId> {
    let leases = s
        .jobs
        .claim(kinds(), at(now), at(now + 60_000_000), 100)
        .await
        .unwrap();
    leases.into_iter().map(|l| l.job.id).collect()
}

pub async fn a_reservation_schedules_its_expiry(s: &Stores) {
    let (_, child) = family(s).await;
    let grant = domain::credits::LedgerEntry {
        id: domain::credits::LedgerEventId::new(at(0), [7; 10]),
        organization_id: child.id,
        event_type: domain::credits::LedgerEventType::Grant,
        credits: 10,
        transfer_id: None,
        reservation_id: None,
        description: None,
        metadata: Default::default(),
        created_at: at(2),
    };
    s.credits.grant(grant, &Trail::none()).await.unwrap();
    let reservation = domain::credits::Reservation {
        id: domain::credits::ReservationId::from_uuid(Uuid::new_v4()),
        organization_id: child.id,
        credits: 5,
        status: domain::credits::ReservationStatus::Held,
        description: None,
        expires_at: at(1_000),
        created_at: at(3),
    };
    let expiry = job_id();
    s.credits
        .reserve(
            reservation.clone(),
            expiry,
            (at(0), later()),
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    let scheduled = s.jobs.pending(expiry).await.unwrap().unwrap();
    assert_eq!(
        (
            scheduled.kind.as_str(),
            scheduled.payload.clone(),
            scheduled.run_at,
            scheduled.organization_id
        ),
        (
            EXPIRE_RESERVATION,
            reservation.id.to_string(),
            at(1_000),
            Some(child.id)
        )
    );
}

pub async fn jobs_are_claimed_when_due_and_done_once(s: &Stores) {
    let early = job(None, 100);
    let late = job(None, 200);
    s.jobs.enqueue(late.clone()).await.unwrap();
    s.jobs.enqueue(early.clone()).await.unwrap();
    assert!(matches!(
        s.jobs.enqueue(early.clone()).await,
        Err(domain::ports::StoreError::Duplicate(_))
    ));
    assert!(claim_ids(s, 99).await.is_empty(), "nothing is due yet");
    let leases = s
        .jobs
        .claim(kinds(), at(150), at(10_000), 100)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(
        leases[0].job,
        Job {
            attempts: 1,
            ..early.clone()
        }
    );
    assert!(
        claim_ids(s, 160).await.is_empty(),
        "claimed: not claimed again while its lease runs"
    );
    s.jobs.complete(&leases[0]).await.unwrap();
    assert_eq!(
        s.jobs.pending(early.id).await.unwrap(),
        None,
        "done jobs are gone"
    );
    assert_eq!(claim_ids(s, 250).await, vec![late.id]);
    // Other kinds are not claimed.
    s.jobs
        .enqueue(Job {
            kind: "other".into(),
            ..job(None, 10)
        })
        .await
        .unwrap();
    assert!(claim_ids(s, 300).await.is_empty());
}

pub async fn an_abandoned_claim_is_claimed_again(s: &Stores) {
    let work = job(None, 100);
    s.jobs.enqueue(work.clone()).await.unwrap();
    let first = s
        .jobs
        .claim(kinds(), at(100), at(500), 10)
        .await
        .unwrap()
        .remove(0);
    // Its worker died: after the lease, another claims it, and the first's completion is void.
    let second = s
        .jobs
        .claim(kinds(), at(500), at(900), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.job.attempts, 2);
    s.jobs.complete(&first).await.unwrap();
    assert!(
        s.jobs.pending(work.id).await.unwrap().is_some(),
        "a stale lease completes nothing"
    );
    // Retried: due again later, then done.
    s.jobs.retry(&second, at(2_000)).await.unwrap();
    assert!(claim_ids(s, 1_999).await.is_empty());
    let third = s
        .jobs
        .claim(kinds(), at(2_000), at(3_000), 10)
        .await
        .unwrap()
        .remove(0);
    s.jobs.complete(&third).await.unwrap();
    assert_eq!(s.jobs.pending(work.id).await.unwrap(), None);
}

pub async fn jobs_are_held_while_suspended_and_cancelled_by_archive(s: &Stores) {
    let (parent, child) = family(s).await;
    let bound = job(Some(child.id), 100);
    let unbound = job(None, 100);
    s.jobs.enqueue(bound.clone()).await.unwrap();
    s.jobs.enqueue(unbound.clone()).await.unwrap();
    let paused = suspend(s, &child).await;
    assert_eq!(
        claim_ids(s, 200).await,
        vec![unbound.id],
        "the suspended child's job is held"
    );
    let resumed = resume(s, &paused).await;
    assert_eq!(
        claim_ids(s, 300).await,
        vec![bound.id],
        "picked up after resume"
    );
    // A suspended parent holds its children's work too.
    let (other_parent, other_child) = family(s).await;
    let held = job(Some(other_child.id), 100);
    s.jobs.enqueue(held.clone()).await.unwrap();
    suspend(s, &other_parent).await;
    assert!(claim_ids(s, 400).await.is_empty());
    // Archive cancels the organization's pending jobs.
    let doomed = job(Some(resumed.id), 1_000);
    s.jobs.enqueue(doomed.clone()).await.unwrap();
    let gone = archived(&resumed, at(500));
    s.organizations
        .archive(&gone, resumed.revision, reclaim(), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(s.jobs.pending(doomed.id).await.unwrap(), None);
    let _ = parent;
}

/// A held job that a claim met due says so in its lease after the resume (`Lease::was_held`),
/// until it is scheduled again; a job that was not due while held, or not held, does not. Webhook
/// retries rely on it so that time held uses up no retry (API.md §7).
pub async fn a_job_held_past_its_time_is_claimed_as_held(s: &Stores) {
    let (_, child) = family(s).await;
    let held = job(Some(child.id), 100);
    let later = job(Some(child.id), 10_000);
    let free = job(None, 100);
    for j in [&held, &later, &free] {
        s.jobs.enqueue(j.clone()).await.unwrap();
    }
    let paused = suspend(s, &child).await;
    // Each claim's jobs, with whether they waited for a resume; the leases, to retry one.
    let claim = |now: i64| async move {
        let leases = s
            .jobs
            .claim(kinds(), at(now), at(now + 60_000_000), 100)
            .await
            .unwrap();
        let shown: Vec<(JobId, bool)> = leases.iter().map(|l| (l.job.id, l.was_held)).collect();
        (shown, leases)
    };
    assert_eq!(claim(200).await.0, [(free.id, false)]);
    resume(s, &paused).await;
    let (shown, leases) = claim(300).await;
    assert_eq!(
        shown,
        [(held.id, true)],
        "due while held: it waited for the resume"
    );
    s.jobs.retry(&leases[0], at(400)).await.unwrap();
    assert_eq!(
        claim(400).await.0,
        [(held.id, false)],
        "scheduled again: the hold is over"
    );
    assert_eq!(
        claim(10_000).await.0,
        [(later.id, false)],
        "held, but not due while held"
    );
}

async fn suspend(s: &Stores, org: &Organization) -> Organization {
    update(s, suspended(org, at(50)), org).await
}

async fn resume(s: &Stores, paused: &Organization) -> Organization {
    update(s, resumed(paused, at(250)), paused).await
}

/// Stores `next` over `current`, which must apply.
async fn update(s: &Stores, next: Organization, current: &Organization) -> Organization {
    assert_eq!(
        s.organizations
            .update(&next, current.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    next
}

/// Eight workers claiming at once from 40 due jobs: every job is claimed by exactly one.
pub async fn concurrent_workers_never_claim_one_job_twice(s: &Stores) {
    let jobs: Vec<Job> = (0..40).map(|i| job(None, 100 + i)).collect();
    for j in &jobs {
        s.jobs.enqueue(j.clone()).await.unwrap();
    }
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (queue, barrier) = (s.jobs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let leases = queue
                        .claim(kinds(), at(1_000), at(100_000), 3)
                        .await
                        .unwrap();
                    if leases.is_empty() {
                        break mine;
                    }
                    mine.extend(leases.into_iter().map(|l| l.job.id));
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "a job was claimed twice");
    assert_eq!(unique.len(), 40, "every job was claimed");
}

pub async fn a_queue_runs_its_jobs_one_at_a_time_in_order(s: &Stores) {
    let queued = |run_at| Job {
        queue: Some("contract queue".to_owned()),
        ..job(None, run_at)
    };
    let (first, second, third) = (queued(10), queued(10), queued(20));
    let loose = job(None, 10);
    for j in [&first, &second, &third, &loose] {
        s.jobs.enqueue(j.clone()).await.unwrap();
    }
    let mut claimed = claim_ids(s, 30).await;
    claimed.sort();
    let mut expected = vec![first.id, loose.id];
    expected.sort();
    assert_eq!(
        claimed, expected,
        "one job of the queue, the first scheduled"
    );
    assert!(
        claim_ids(s, 30).await.is_empty(),
        "the queue waits while its first job is claimed"
    );
    let leases = s
        .jobs
        .claim(kinds(), at(100_000_000), at(200_000_000), 100)
        .await
        .unwrap();
    let ids: Vec<_> = leases
        .iter()
        .map(|l| l.job.id)
        .filter(|id| *id != loose.id)
        .collect();
    assert_eq!(
        ids,
        vec![first.id],
        "an abandoned first job is the one claimed again"
    );
    for lease in &leases {
        s.jobs.complete(lease).await.unwrap();
    }
    let leases = s.jobs.claim(kinds(), at(30), at(60), 100).await.unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    // Put back for later, it lets the next one of the queue go first.
    s.jobs.retry(&leases[0], at(1_000)).await.unwrap();
    let leases = s.jobs.claim(kinds(), at(30), at(60), 100).await.unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job.id).collect::<Vec<_>>(),
        vec![third.id]
    );
    // A job scheduled late but due earlier does not overtake one in flight: one at a time.
    let early = queued(5);
    s.jobs.enqueue(early.clone()).await.unwrap();
    assert!(
        claim_ids(s, 40).await.is_empty(),
        "the queue has a job in flight"
    );
    s.jobs.complete(&leases[0]).await.unwrap();
    assert_eq!(claim_ids(s, 40).await, vec![early.id]);
}
