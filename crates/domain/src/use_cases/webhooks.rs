//! Webhook endpoints, their deliveries, and the worker that attempts them (API.md §7).

use super::{ControlPlane, MAX_ATTEMPTS};
use crate::api_key::Scope;
use crate::audit::{AuditData, AuditEventType};
use crate::error::{ConflictSubject, Resource};
use crate::idempotency::Idempotency;
use crate::jobs::Lease;
use crate::pagination::{Page, PageCursor, PageRequest};
use crate::policy::{self, Principal};
use crate::ports::{EndpointInsert, OutboundRequest, SendOutcome};
use crate::trail::{EventSubject, Trail};
use crate::validation::FieldError;
use crate::webhooks::{
    self, AttemptRecord, Delivery, DeliveryId, DeliveryStatus, EndpointId, EndpointScope,
    EndpointStatus, Event, EventSelection, EventType, PendingAttempt, SigningSecret,
    WebhookEndpoint, WebhookUrl,
};
use crate::DomainError;

/// An endpoint to create, as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `own` (the default) or `all_children`.
    pub scope: Option<String>,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// `enabled` or `disabled`.
    pub status: Option<String>,
}

impl ControlPlane {
    /// Creates an endpoint of the acting organization; the answer carries the signing secret,
    /// shown this once.
    pub async fn create_webhook_endpoint(
        &self,
        principal: &Principal,
        input: NewEndpoint,
        idempotency: Option<Idempotency<WebhookEndpoint>>,
    ) -> Result<WebhookEndpoint, DomainError> {
        policy::require_scope(principal, Scope::WebhooksWrite)?;
        let scope = match input.scope.as_deref() {
            None => EndpointScope::Own,
            Some(raw) => EndpointScope::parse(raw).ok_or_else(|| {
                DomainError::validation(FieldError::new(
                    "scope",
                    "must be \"own\" or \"all_children\"",
                ))
            })?,
        };
        if scope == EndpointScope::AllChildren {
            // The firehose is the control plane's: only an org:admin key, for its own
            // (top-level) organization.
            policy::require_scope(principal, Scope::OrgAdmin)?;
            if principal.acting.is_some() {
                return Err(DomainError::validation(FieldError::new(
                    "scope",
                    "all_children is for the caller's own organization, not a child's",
                )));
            }
        }
        let mut errors = Vec::new();
        let url = WebhookUrl::parse(&input.url)
            .map_err(|e| errors.push(e))
            .ok();
        let events = EventSelection::parse(&input.events)
            .map_err(|e| errors.push(e))
            .ok();
        if let Err(e) = check_description(input.description.as_deref()) {
            errors.push(e);
        }
        let (Some(url), Some(events), true) = (url, events, errors.is_empty()) else {
            return Err(DomainError::Validation(errors));
        };
        self.vet(&url).await?;
        let organization = principal.acting_organization();
        policy::ensure_writable(organization)?;
        let now = self.ports.clock.now();
        let mut secret = [0u8; 32];
        self.ports.random.fill(&mut secret);
        let endpoint = WebhookEndpoint {
            id: EndpointId::from_uuid(self.new_uuid()),
            organization_id: organization.id,
            url,
            events,
            scope,
            status: EndpointStatus::Enabled,
            description: input.description,
            secret: SigningSecret::from_random(secret),
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
        };
        let trail =
            self.endpoint_trail(principal, &endpoint, AuditEventType::WebhookEndpointCreated);
        let done = idempotency.map(|i| i.complete(&endpoint, now));
        match self
            .ports
            .webhooks
            .insert_endpoint(&endpoint, &trail, done)
            .await?
        {
            EndpointInsert::Inserted => Ok(endpoint),
            EndpointInsert::OrganizationClosed => {
                let current = self.ports.organizations.find(organization.id).await?;
                policy::ensure_writable(&current.unwrap_or_else(|| organization.clone()))?;
                Err(DomainError::NotFound(Resource::Organization))
            }
        }
    }

    pub async fn list_webhook_endpoints(
        &self,
        principal: &Principal,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>, DomainError> {
        policy::require_scope(principal, Scope::WebhooksRead)?;
        let rows = self
            .ports
            .webhooks
            .list_endpoints(principal.acting_organization().id, page.overfetch())
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |e| PageCursor {
            created_at: e.created_at,
            id: e.id.as_uuid(),
        }))
    }

    pub async fn get_webhook_endpoint(
        &self,
        principal: &Principal,
        id: EndpointId,
    ) -> Result<WebhookEndpoint, DomainError> {
        policy::require_scope(principal, Scope::WebhooksRead)?;
        self.load_endpoint(principal, id).await
    }

    /// Changes an endpoint. Enabling it again (after `disabled` or `auto_paused`) resets its
    /// failure count; a patch that changes nothing writes nothing.
    pub async fn update_webhook_endpoint(
        &self,
        principal: &Principal,
        id: EndpointId,
        patch: EndpointPatch,
        idempotency: Option<Idempotency<WebhookEndpoint>>,
    ) -> Result<WebhookEndpoint, DomainError> {
        policy::require_scope(principal, Scope::WebhooksWrite)?;
        let mut errors = Vec::new();
        let url = match patch.url.as_deref().map(WebhookUrl::parse).transpose() {
            Ok(url) => url,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let events = match patch
            .events
            .as_deref()
            .map(EventSelection::parse)
            .transpose()
        {
            Ok(events) => events,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if let Some(Some(description)) = &patch.description {
            if let Err(e) = check_description(Some(description)) {
                errors.push(e);
            }
        }
        let status = match patch.status.as_deref() {
            None => None,
            Some("enabled") => Some(EndpointStatus::Enabled),
            Some("disabled") => Some(EndpointStatus::Disabled),
            Some(_) => {
                errors.push(FieldError::new(
                    "status",
                    "must be \"enabled\" or \"disabled\"",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        if let Some(url) = &url {
            self.vet(url).await?;
        }
        // Compare-and-set on the status read: a worker may pause the endpoint meanwhile, and a
        // patch of its description must not silently enable it again.
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load_endpoint(principal, id).await?;
            let owner = self
                .ports
                .organizations
                .find(current.organization_id)
                .await?
                .ok_or(DomainError::NotFound(Resource::WebhookEndpoint))?;
            policy::ensure_writable(&owner)?;
            let mut next = current.clone();
            if let Some(url) = &url {
                next.url = url.clone();
            }
            if let Some(events) = &events {
                next.events = events.clone();
            }
            if let Some(description) = &patch.description {
                next.description = description.clone();
            }
            if let Some(status) = status {
                if status == EndpointStatus::Enabled && current.status != EndpointStatus::Enabled {
                    next.consecutive_failures = 0;
                }
                next.status = status;
            }
            if next == current {
                return Ok(current);
            }
            let now = self.ports.clock.now();
            next.updated_at = now;
            let trail =
                self.endpoint_trail(principal, &next, AuditEventType::WebhookEndpointUpdated);
            let done = idempotency.as_ref().map(|i| i.complete(&next, now));
            let written = self
                .ports
                .webhooks
                .update_endpoint(&next, current.status, &trail, done)
                .await?;
            if written {
                return Ok(next);
            }
        }
        Err(DomainError::Store(crate::ports::StoreError::Unavailable(
            "the endpoint is changing too often to apply this change; retry".to_owned(),
        )))
    }

    /// Deletes an endpoint; its deliveries still pending are canceled.
    pub async fn delete_webhook_endpoint(
        &self,
        principal: &Principal,
        id: EndpointId,
        idempotency: Option<Idempotency<WebhookEndpoint>>,
    ) -> Result<WebhookEndpoint, DomainError> {
        policy::require_scope(principal, Scope::WebhooksWrite)?;
        let endpoint = self.load_endpoint(principal, id).await?;
        policy::ensure_writable(principal.acting_organization())?;
        let trail =
            self.endpoint_trail(principal, &endpoint, AuditEventType::WebhookEndpointDeleted);
        // A deleted endpoint is `404` from then on, so a retry must replay, not run again.
        let done = idempotency.map(|i| i.complete(&endpoint, self.ports.clock.now()));
        if self
            .ports
            .webhooks
            .delete_endpoint(id, &trail, done)
            .await?
        {
            Ok(endpoint)
        } else {
            Err(DomainError::NotFound(Resource::WebhookEndpoint))
        }
    }

    /// An endpoint's deliveries, newest first; pending ones of a suspended owner show `held`.
    pub async fn list_webhook_deliveries(
        &self,
        principal: &Principal,
        id: EndpointId,
        page: PageRequest,
    ) -> Result<Page<Delivery>, DomainError> {
        policy::require_scope(principal, Scope::WebhooksRead)?;
        let endpoint = self.load_endpoint(principal, id).await?;
        let rows = self
            .ports
            .webhooks
            .list_deliveries(endpoint.id, page.overfetch())
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |d| PageCursor {
            created_at: d.created_at,
            id: d.id.as_uuid(),
        }))
    }

    /// Sends a `test.ping` to one endpoint; answers the delivery it queued.
    pub async fn test_webhook_endpoint(
        &self,
        principal: &Principal,
        id: EndpointId,
        idempotency: Option<Idempotency<Delivery>>,
    ) -> Result<Delivery, DomainError> {
        policy::require_scope(principal, Scope::WebhooksWrite)?;
        let endpoint = self.load_endpoint(principal, id).await?;
        self.ensure_deliverable(principal, &endpoint)?;
        let now = self.ports.clock.now();
        let subject = EventSubject::Ping {
            organization_id: endpoint.organization_id,
            endpoint_id: endpoint.id,
        };
        let event = self.webhook_event(EventType::TestPing, subject, None, now);
        self.send_one(endpoint, event, idempotency).await
    }

    /// Sends a delivery's event again, under a new event id naming the original (`replayOf`).
    pub async fn replay_webhook_delivery(
        &self,
        principal: &Principal,
        id: DeliveryId,
        idempotency: Option<Idempotency<Delivery>>,
    ) -> Result<Delivery, DomainError> {
        policy::require_scope(principal, Scope::WebhooksWrite)?;
        let not_found = || DomainError::NotFound(Resource::WebhookDelivery);
        let original = self
            .ports
            .webhooks
            .find_delivery(id)
            .await?
            .ok_or_else(not_found)?;
        let endpoint = match self
            .ports
            .webhooks
            .find_endpoint(original.endpoint_id)
            .await?
        {
            Some(e) if e.organization_id == principal.acting_organization().id => e,
            _ => return Err(not_found()),
        };
        self.ensure_deliverable(principal, &endpoint)?;
        let body = self
            .ports
            .webhooks
            .event_body(original.event_id)
            .await?
            .ok_or_else(not_found)?;
        let now = self.ports.clock.now();
        let new_id = self.new_event_id(now);
        let event = Event {
            id: new_id,
            event_type: original.event_type,
            organization_id: endpoint.organization_id,
            created_at: now,
            body: self.ports.presenter.replay_body(&body, new_id, now),
            target: None,
            replay_of: Some(original.event_id),
        };
        self.send_one(endpoint, event, idempotency).await
    }

    /// The worker's part (API.md §7, §8): claims due deliveries — none of a suspended owner's,
    /// which are held — and attempts each, in the order they were recorded. Returns how many it
    /// attempted.
    pub async fn deliver_webhooks(&self, limit: usize) -> Result<usize, DomainError> {
        let now = self.ports.clock.now();
        let leases = self
            .ports
            .jobs
            .claim(
                vec![webhooks::DELIVER.to_owned()],
                now,
                now.plus(webhooks::DELIVERY_LEASE),
                limit,
            )
            .await?;
        for lease in &leases {
            self.attempt_delivery(lease).await?;
        }
        Ok(leases.len())
    }

    async fn attempt_delivery(&self, lease: &Lease) -> Result<(), DomainError> {
        let pending = match DeliveryId::parse(&lease.job.payload) {
            Ok(id) => self.ports.webhooks.pending_attempt(id).await?,
            Err(_) => None,
        };
        let started = self.ports.clock.now();
        let canceled = |why: String| AttemptRecord {
            at: started,
            status: DeliveryStatus::Canceled,
            next_attempt_at: None,
            response_status: None,
            error: Some(why),
            attempted: false,
        };
        let PendingAttempt {
            delivery,
            endpoint,
            body,
        } = match pending {
            // The endpoint was deleted (or the delivery is gone): nothing to send, ever.
            None => {
                let record = canceled("the endpoint was deleted".to_owned());
                self.ports.webhooks.finish_attempt(lease, &record).await?;
                return Ok(());
            }
            // Already finished (a worker died after recording it): the job is done.
            Some(p) if p.delivery.status != DeliveryStatus::Pending => {
                self.ports.jobs.complete(lease).await?;
                return Ok(());
            }
            // Its owner was suspended since the claim: put back, held with the rest.
            Some(p) if p.delivery.held => {
                self.ports.jobs.retry(lease, lease.job.run_at).await?;
                return Ok(());
            }
            Some(p) => p,
        };
        if endpoint.status != EndpointStatus::Enabled {
            let record = canceled(format!("the endpoint is {}", endpoint.status.as_str()));
            self.ports.webhooks.finish_attempt(lease, &record).await?;
            return Ok(());
        }
        let request = OutboundRequest {
            url: endpoint.url.clone(),
            headers: vec![
                ("X-Layers-Event-Id", delivery.event_id.to_string()),
                (
                    "X-Layers-Signature",
                    endpoint.secret.signature(started, &body),
                ),
                ("Content-Type", "application/json".to_owned()),
            ],
            body,
        };
        let outcome = self.ports.sender.send(request).await;
        let at = self.ports.clock.now();
        let attempts = delivery.attempts.saturating_add(1);
        // Anchored on the first try and the due times, not on when this attempt ended, so slow
        // or late attempts do not drift the schedule; a held one moves it (API.md §7).
        let on_schedule =
            webhooks::on_schedule(attempts, lease.job.run_at, started, lease.was_held);
        let failed = |response_status: Option<u16>, error: String, retry: bool| {
            let next = if retry {
                webhooks::next_attempt(attempts, on_schedule)
            } else {
                None
            };
            let status = match (next, retry) {
                (Some(_), _) => DeliveryStatus::Pending,
                (None, true) => DeliveryStatus::Abandoned,
                (None, false) => DeliveryStatus::Failed,
            };
            AttemptRecord {
                at,
                status,
                next_attempt_at: next,
                response_status,
                error: Some(error),
                attempted: true,
            }
        };
        let record = match outcome {
            SendOutcome::Answered { status } if (200..300).contains(&status) => AttemptRecord {
                at,
                status: DeliveryStatus::Succeeded,
                next_attempt_at: None,
                response_status: Some(status),
                error: None,
                attempted: true,
            },
            SendOutcome::Answered { status } => failed(
                Some(status),
                format!("the endpoint answered {status}"),
                webhooks::retryable(status),
            ),
            SendOutcome::NoAnswer { error } => failed(None, error, true),
        };
        self.ports.webhooks.finish_attempt(lease, &record).await?;
        Ok(())
    }

    /// Records `event` for exactly one endpoint (a ping, a replay) and answers its delivery.
    async fn send_one(
        &self,
        endpoint: WebhookEndpoint,
        mut event: Event,
        idempotency: Option<Idempotency<Delivery>>,
    ) -> Result<Delivery, DomainError> {
        let delivery_id = DeliveryId::from_uuid(self.new_uuid());
        event.target = Some((endpoint.id, delivery_id));
        let delivery = Delivery::of(delivery_id, endpoint.id, &event);
        let done = idempotency.map(|i| i.complete(&delivery, event.created_at));
        let trail = Trail::none().with_event(event);
        self.ports.webhooks.record(&trail, done).await?;
        Ok(self
            .ports
            .webhooks
            .find_delivery(delivery_id)
            .await?
            .unwrap_or(delivery))
    }

    /// A ping or replay starts work: it goes only to an enabled endpoint of an organization
    /// that is neither archived nor suspended (API.md §2.3).
    fn ensure_deliverable(
        &self,
        principal: &Principal,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), DomainError> {
        policy::ensure_may_spend(principal.acting_organization())?;
        if endpoint.status != EndpointStatus::Enabled {
            return Err(DomainError::Conflict {
                message: format!(
                    "the endpoint is {}: enable it to send to it",
                    endpoint.status.as_str()
                ),
                subject: ConflictSubject::WebhookEndpoint {
                    id: endpoint.id,
                    status: endpoint.status.as_str(),
                },
            });
        }
        Ok(())
    }

    async fn vet(&self, url: &WebhookUrl) -> Result<(), DomainError> {
        self.ports
            .sender
            .vet(url)
            .await
            .map_err(|why| DomainError::validation(FieldError::new("url", why)))
    }

    async fn load_endpoint(
        &self,
        principal: &Principal,
        id: EndpointId,
    ) -> Result<WebhookEndpoint, DomainError> {
        match self.ports.webhooks.find_endpoint(id).await? {
            Some(e) if e.organization_id == principal.acting_organization().id => Ok(e),
            _ => Err(DomainError::NotFound(Resource::WebhookEndpoint)),
        }
    }

    fn endpoint_trail(
        &self,
        principal: &Principal,
        endpoint: &WebhookEndpoint,
        audit_type: AuditEventType,
    ) -> Trail {
        let data = AuditData::WebhookEndpoint {
            endpoint_id: endpoint.id.to_string(),
            url: endpoint.url.as_str().to_owned(),
            status: endpoint.status.as_str(),
        };
        Trail::none().with_audit(self.audit_event(
            Some(principal),
            endpoint.organization_id,
            audit_type,
            &data,
            self.ports.clock.now(),
        ))
    }
}

fn check_description(description: Option<&str>) -> Result<(), FieldError> {
    let Some(description) = description else {
        return Ok(());
    };
    crate::validation::no_nul("description", description)?;
    if description.chars().count() > webhooks::MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(
            "description",
            format!(
                "must be at most {} characters",
                webhooks::MAX_DESCRIPTION_CHARS
            ),
        ));
    }
    Ok(())
}
