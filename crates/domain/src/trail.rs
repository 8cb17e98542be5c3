//! What a material action leaves behind besides its effect: audit events (API.md §9) and webhook
//! events (§7). A use case builds the [`Trail`] before it writes; the store writes it in the same
//! atomic change as the effect — and only if the effect is applied — so there is never an effect
//! without its trail nor a trail without its effect. For each webhook event the store also
//! creates, in that change, the deliveries to every endpoint that wants it (the outbox).

use std::sync::Arc;

use crate::api_key::ApiKey;
use crate::audit::AuditEvent;
use crate::organization::Organization;
use crate::webhooks::{EndpointId, Event, EventId, EventType};
use crate::{OrganizationId, Timestamp};

/// Renders the trail of what an archive swept, once the store knows how many credits it moved
/// (inside the archive's own change); only called for a positive amount.
pub type ReclaimTrail = Arc<dyn Fn(u64) -> Trail + Send + Sync>;

#[derive(Clone, Default)]
pub struct Trail {
    pub audit: Vec<AuditEvent>,
    pub events: Vec<Event>,
    pub on_reclaim: Option<ReclaimTrail>,
}

impl Trail {
    /// Nothing to record (an operator's maintenance, a test fixture).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn with_audit(mut self, event: AuditEvent) -> Self {
        self.audit.push(event);
        self
    }

    pub fn with_event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    pub fn reclaiming(mut self, render: ReclaimTrail) -> Self {
        self.on_reclaim = Some(render);
        self
    }

    /// Everything to write, for a change that moved `reclaimed` credits back to a parent.
    pub fn resolved(&self, reclaimed: u64) -> Trail {
        let mut all = Trail {
            audit: self.audit.clone(),
            events: self.events.clone(),
            on_reclaim: None,
        };
        if let (Some(render), true) = (&self.on_reclaim, reclaimed > 0) {
            let extra = render(reclaimed);
            all.audit.extend(extra.audit);
            all.events.extend(extra.events);
        }
        all
    }
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail")
            .field("audit", &self.audit)
            .field("events", &self.events)
            .field("on_reclaim", &self.on_reclaim.is_some())
            .finish()
    }
}

/// A webhook event before it is rendered: what the presenter turns into its JSON body.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub id: EventId,
    pub event_type: EventType,
    pub created_at: Timestamp,
    pub subject: EventSubject,
    /// The suspension's reason (API.md §1.1), on `organization.suspended`.
    pub reason: Option<String>,
}

impl EventDraft {
    /// The organization the event is about.
    pub fn organization_id(&self) -> OrganizationId {
        match &self.subject {
            EventSubject::Organization(org) => org.id,
            EventSubject::ApiKey(key) => key.organization_id,
            EventSubject::Credits {
                organization_id, ..
            } => *organization_id,
            EventSubject::Ping {
                organization_id, ..
            } => *organization_id,
        }
    }
}

/// What an event's `data.object` shows.
#[derive(Debug, Clone)]
pub enum EventSubject {
    Organization(Organization),
    ApiKey(ApiKey),
    /// Credits moved between a parent and a child (an allocation or a reclaim).
    Credits {
        organization_id: OrganizationId,
        transfer_id: String,
        credits: u64,
        from_organization_id: OrganizationId,
        to_organization_id: OrganizationId,
    },
    Ping {
        organization_id: OrganizationId,
        endpoint_id: EndpointId,
    },
}
