//! Scheduled work (API.md §8): a durable queue of jobs, each possibly bound to an organization.
//! A job bound to a suspended organization (or a child of a suspended one) is not picked up — it
//! is held, decided where jobs are claimed, so suspend and resume cost nothing per held job — and
//! archiving the organization cancels it. Jobs are claimed with a lease, so several processes can
//! run workers without running one job twice at once, and a job whose worker died is claimed
//! again when its lease ends. Services embedding the domain schedule their own kinds of work here.

use uuid::Uuid;

use crate::{OrganizationId, Timestamp};

crate::ids::prefixed_id!(
    /// A scheduled job: `job_<uuid>`.
    JobId,
    "job_"
);

/// The kind of work the domain itself schedules: releasing a reservation past its expiry.
pub const EXPIRE_RESERVATION: &str = "reservation.expire";

/// How long a claimed job is its worker's before another may take it over.
pub const JOB_LEASE: time::Duration = time::Duration::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    /// The organization whose suspension holds it and whose archive cancels it.
    pub organization_id: Option<OrganizationId>,
    /// What to do, e.g. [`EXPIRE_RESERVATION`]; a service's own kinds are its own strings.
    pub kind: String,
    /// The job's argument, as its kind reads it.
    pub payload: String,
    /// Not before this instant.
    pub run_at: Timestamp,
    /// How many times it was claimed before.
    pub attempts: u32,
    /// Jobs sharing a queue run one at a time, in order: one is not claimed while an earlier one
    /// of its queue (by `run_at`, then by when it was scheduled) is pending or claimed. Webhook
    /// deliveries queue per endpoint, so a receiver gets its events in the order they happened.
    pub queue: Option<String>,
}

/// A claimed job: the job and the token that proves the claim is still this worker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: Job,
    pub token: Uuid,
    /// The job fell due while it was held (its organization, or the parent, suspended) and
    /// waited for the resume, since it was last scheduled: it starts late by the time held.
    /// Webhook retries use it so that time held uses up no retry (API.md §7).
    pub was_held: bool,
}
