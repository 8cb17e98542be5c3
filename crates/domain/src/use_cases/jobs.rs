//! Scheduled work for services embedding the domain (API.md §8): schedule a job bound to an
//! organization, claim due ones, complete or retry them. The hold while suspended and the
//! cancellation on archive come with the queue.

use super::ControlPlane;
use crate::jobs::{Job, JobId, Lease, JOB_LEASE};
use crate::{DomainError, OrganizationId, Timestamp};

impl ControlPlane {
    /// Schedules `kind` with `payload` to run at `run_at`, bound to `organization` if given.
    pub async fn schedule_job(
        &self,
        organization: Option<OrganizationId>,
        kind: &str,
        payload: &str,
        run_at: Timestamp,
    ) -> Result<JobId, DomainError> {
        let id = JobId::from_uuid(self.new_uuid());
        let job = Job {
            id,
            organization_id: organization,
            kind: kind.to_owned(),
            payload: payload.to_owned(),
            run_at,
            attempts: 0,
            queue: None,
        };
        self.ports.jobs.enqueue(job).await?;
        Ok(id)
    }

    /// Claims up to `limit` due jobs of `kinds` for this worker.
    pub async fn claim_jobs(
        &self,
        kinds: &[&str],
        limit: usize,
    ) -> Result<Vec<Lease>, DomainError> {
        let now = self.ports.clock.now();
        let kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        Ok(self
            .ports
            .jobs
            .claim(kinds, now, now.plus(JOB_LEASE), limit)
            .await?)
    }

    pub async fn complete_job(&self, lease: &Lease) -> Result<(), DomainError> {
        Ok(self.ports.jobs.complete(lease).await?)
    }

    pub async fn retry_job(&self, lease: &Lease, run_at: Timestamp) -> Result<(), DomainError> {
        Ok(self.ports.jobs.retry(lease, run_at).await?)
    }
}
