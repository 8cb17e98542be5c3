//! The audit log and webhooks in memory: trails written under the same lock as their effect,
//! the outbox fan-out, and the delivery records.

use async_trait::async_trait;
use domain::audit::{AuditEvent, AuditFilter};
use domain::idempotency::Completion;
use domain::jobs::{Job, JobId, Lease};
use domain::pagination::PageRequest;
use domain::ports::{AuditLog, EndpointInsert, StoreError, WebhookStore};
use domain::trail::Trail;
use domain::webhooks::{
    AttemptRecord, Delivery, DeliveryId, DeliveryStatus, EndpointId, EndpointStatus, Event,
    EventId, PendingAttempt, WebhookEndpoint, AUTO_PAUSE_AFTER, DELIVER,
};
use domain::{OrganizationId, Timestamp};
use uuid::Uuid;

use crate::{page, MemoryStore, State};

impl State {
    /// Writes a trail — called after the effect is applied, under the same lock — resolved for
    /// `reclaimed` credits swept to a parent.
    pub(crate) fn write_trail(&mut self, trail: &Trail, reclaimed: u64) {
        let trail = trail.resolved(reclaimed);
        self.audit.extend(trail.audit);
        for event in trail.events {
            self.fan_out(&event);
            self.events.insert(event.id, event);
        }
    }

    /// The outbox: one delivery per endpoint that wants the event, each scheduled as a job bound
    /// to the endpoint's owner (held while it is suspended, canceled when it is archived).
    fn fan_out(&mut self, event: &Event) {
        let targets: Vec<(EndpointId, DeliveryId)> = match event.target {
            Some((endpoint, delivery)) => self
                .endpoints
                .get(&endpoint)
                .filter(|e| self.is_open(e.organization_id))
                .map(|_| (endpoint, delivery))
                .into_iter()
                .collect(),
            None => {
                let parent = self
                    .organizations
                    .get(&event.organization_id)
                    .and_then(|org| org.parent_id);
                self.endpoints
                    .values()
                    .filter(|e| e.wants(event.event_type, event.organization_id, parent))
                    .filter(|e| self.is_open(e.organization_id))
                    .map(|e| (e.id, DeliveryId::from_uuid(Uuid::new_v4())))
                    .collect()
            }
        };
        for (endpoint_id, delivery_id) in targets {
            let Some(owner) = self.endpoints.get(&endpoint_id).map(|e| e.organization_id) else {
                continue;
            };
            self.deliveries
                .insert(delivery_id, Delivery::of(delivery_id, endpoint_id, event));
            let job = Job {
                id: JobId::from_uuid(delivery_id.as_uuid()),
                organization_id: Some(owner),
                kind: DELIVER.to_owned(),
                payload: delivery_id.to_string(),
                run_at: event.created_at,
                attempts: 0,
                queue: Some(endpoint_id.to_string()),
            };
            self.schedule(job);
        }
    }

    /// An archived organization's endpoints are disabled and its deliveries still pending are
    /// canceled (their jobs are removed with its other scheduled work), API.md §4.9.
    pub(crate) fn cancel_deliveries_of(&mut self, organization: OrganizationId, at: Timestamp) {
        let mut owned = Vec::new();
        for endpoint in self.endpoints.values_mut() {
            if endpoint.organization_id == organization {
                if endpoint.status != EndpointStatus::Disabled {
                    endpoint.status = EndpointStatus::Disabled;
                    endpoint.updated_at = at;
                }
                owned.push(endpoint.id);
            }
        }
        for delivery in self.deliveries.values_mut() {
            if owned.contains(&delivery.endpoint_id) && delivery.status == DeliveryStatus::Pending {
                delivery.status = DeliveryStatus::Canceled;
                delivery.next_attempt_at = None;
            }
        }
    }

    /// A delivery as shown now: `held` while its endpoint's owner (or the owner's parent) is
    /// suspended.
    fn shown(&self, delivery: &Delivery) -> Delivery {
        let held = delivery.status == DeliveryStatus::Pending
            && self
                .endpoints
                .get(&delivery.endpoint_id)
                .is_some_and(|e| self.held_by_kill_switch(e.organization_id));
        Delivery {
            held,
            ..delivery.clone()
        }
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn list(
        &self,
        organization: OrganizationId,
        filter: AuditFilter,
        request: PageRequest,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.state();
        let events = state
            .audit
            .iter()
            .filter(|e| e.organization_id == organization && filter.admits(e));
        Ok(page(events, |e| (e.occurred_at, e.id.as_uuid()), request))
    }

    async fn record_refusal(
        &self,
        event: &AuditEvent,
        since: Timestamp,
    ) -> Result<bool, StoreError> {
        let domain::audit::Actor::ApiKey { api_key_id, .. } = event.actor else {
            return Err(StoreError::Internal(
                "a kill-switch refusal is always a key's".to_owned(),
            ));
        };
        let mut state = self.state();
        if state
            .refusals
            .get(&api_key_id)
            .is_some_and(|last| *last > since)
        {
            return Ok(false);
        }
        state.refusals.insert(api_key_id, event.occurred_at);
        state.audit.push(event.clone());
        Ok(true)
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<EndpointInsert, StoreError> {
        let mut state = self.state();
        if !state.is_open(endpoint.organization_id) {
            return Ok(EndpointInsert::OrganizationClosed);
        }
        if state.endpoints.contains_key(&endpoint.id) {
            return Err(StoreError::Duplicate(format!("endpoint {}", endpoint.id)));
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.endpoints.insert(endpoint.id, endpoint.clone());
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(EndpointInsert::Inserted)
    }

    async fn find_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(self.state().endpoints.get(&id).cloned())
    }

    async fn list_endpoints(
        &self,
        organization: OrganizationId,
        request: PageRequest,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let state = self.state();
        let endpoints = state
            .endpoints
            .values()
            .filter(|e| e.organization_id == organization);
        Ok(page(endpoints, |e| (e.created_at, e.id.as_uuid()), request))
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        read_status: EndpointStatus,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let unchanged = state
            .endpoints
            .get(&endpoint.id)
            .is_some_and(|stored| stored.status == read_status);
        if !unchanged {
            return Ok(false);
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.endpoints.insert(endpoint.id, endpoint.clone());
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(true)
    }

    async fn delete_endpoint(
        &self,
        id: EndpointId,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        if !state.endpoints.contains_key(&id) {
            return Ok(false);
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.endpoints.remove(&id);
        let mut canceled = Vec::new();
        for delivery in state.deliveries.values_mut() {
            if delivery.endpoint_id == id && delivery.status == DeliveryStatus::Pending {
                delivery.status = DeliveryStatus::Canceled;
                delivery.next_attempt_at = None;
                canceled.push(JobId::from_uuid(delivery.id.as_uuid()));
            }
        }
        for job in canceled {
            state.jobs.remove(&job);
        }
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        request: PageRequest,
    ) -> Result<Vec<Delivery>, StoreError> {
        let state = self.state();
        let deliveries = state
            .deliveries
            .values()
            .filter(|d| d.endpoint_id == endpoint);
        let rows = page(deliveries, |d| (d.created_at, d.id.as_uuid()), request);
        Ok(rows.iter().map(|d| state.shown(d)).collect())
    }

    async fn find_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let state = self.state();
        Ok(state.deliveries.get(&id).map(|d| state.shown(d)))
    }

    async fn event_body(&self, id: EventId) -> Result<Option<String>, StoreError> {
        Ok(self.state().events.get(&id).map(|e| e.body.clone()))
    }

    async fn record(&self, trail: &Trail, done: Option<Completion>) -> Result<(), StoreError> {
        let mut state = self.state();
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(())
    }

    async fn pending_attempt(&self, id: DeliveryId) -> Result<Option<PendingAttempt>, StoreError> {
        let state = self.state();
        let Some(delivery) = state.deliveries.get(&id) else {
            return Ok(None);
        };
        let (Some(endpoint), Some(event)) = (
            state.endpoints.get(&delivery.endpoint_id),
            state.events.get(&delivery.event_id),
        ) else {
            return Ok(None);
        };
        Ok(Some(PendingAttempt {
            delivery: state.shown(delivery),
            endpoint: endpoint.clone(),
            body: event.body.clone(),
        }))
    }

    async fn finish_attempt(
        &self,
        lease: &Lease,
        record: &AttemptRecord,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let ours = state
            .jobs
            .get(&lease.job.id)
            .is_some_and(|s| s.claim.is_some_and(|(token, _)| token == lease.token));
        let Some(id) = DeliveryId::parse(&lease.job.payload).ok().filter(|_| ours) else {
            return Ok(false);
        };
        let Some(delivery) = state.deliveries.get_mut(&id) else {
            state.jobs.remove(&lease.job.id);
            return Ok(true);
        };
        delivery.status = record.status;
        delivery.next_attempt_at = record.next_attempt_at;
        if record.attempted {
            delivery.attempts += 1;
            delivery.last_attempt_at = Some(record.at);
            delivery.last_response_status = record.response_status;
        }
        delivery.last_error = record.error.clone();
        let endpoint_id = delivery.endpoint_id;
        if let (true, Some(endpoint)) = (record.attempted, state.endpoints.get_mut(&endpoint_id)) {
            if record.status == DeliveryStatus::Succeeded {
                endpoint.consecutive_failures = 0;
            } else {
                endpoint.consecutive_failures += 1;
                if endpoint.consecutive_failures >= AUTO_PAUSE_AFTER
                    && endpoint.status == EndpointStatus::Enabled
                {
                    endpoint.status = EndpointStatus::AutoPaused;
                }
            }
        }
        match (record.status, record.next_attempt_at) {
            (DeliveryStatus::Pending, Some(run_at)) => {
                if let Some(scheduled) = state.jobs.get_mut(&lease.job.id) {
                    scheduled.claim = None;
                    scheduled.job.run_at = run_at;
                    // Scheduled again: a hold from now on is a new one.
                    scheduled.was_held = false;
                }
            }
            _ => {
                state.jobs.remove(&lease.job.id);
            }
        }
        Ok(true)
    }
}
