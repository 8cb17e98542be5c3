//! Building the trail a material action leaves (audit and webhook events), for the store to
//! write with the action's own change.

use super::ControlPlane;
use crate::audit::{Actor, AuditData, AuditEvent, AuditEventId, AuditEventType};
use crate::organization::Organization;
use crate::policy::Principal;
use crate::trail::{EventDraft, EventSubject};
use crate::webhooks::{Event, EventId, EventType};
use crate::{OrganizationId, Timestamp};

/// Who acts, for the audit log: a request's principal, or the operator (`None`).
pub(crate) type By<'a> = Option<&'a Principal>;

impl ControlPlane {
    pub(crate) fn audit_event(
        &self,
        by: By<'_>,
        organization_id: OrganizationId,
        event_type: AuditEventType,
        data: &AuditData,
        at: Timestamp,
    ) -> AuditEvent {
        let mut random = [0u8; 10];
        self.ports.random.fill(&mut random);
        AuditEvent {
            id: AuditEventId::new(at, random),
            event_type,
            occurred_at: at,
            request_id: by.and_then(|p| p.request_id.clone()),
            organization_id,
            actor: by.map_or(Actor::Operator, |p| Actor::ApiKey {
                api_key_id: p.key.id,
                organization_id: p.organization.id,
            }),
            data: self.ports.presenter.audit_data(data),
        }
    }

    pub(crate) fn webhook_event(
        &self,
        event_type: EventType,
        subject: EventSubject,
        reason: Option<String>,
        at: Timestamp,
    ) -> Event {
        let draft = EventDraft {
            id: self.new_event_id(at),
            event_type,
            created_at: at,
            subject,
            reason,
        };
        Event {
            id: draft.id,
            event_type,
            organization_id: draft.organization_id(),
            created_at: at,
            body: self.ports.presenter.event_body(&draft),
            target: None,
            replay_of: None,
        }
    }

    pub(crate) fn organization_event(
        &self,
        event_type: EventType,
        org: &Organization,
        reason: Option<String>,
    ) -> Event {
        self.webhook_event(
            event_type,
            EventSubject::Organization(org.clone()),
            reason,
            org.updated_at,
        )
    }

    pub(crate) fn new_event_id(&self, at: Timestamp) -> EventId {
        let mut random = [0u8; 10];
        self.ports.random.fill(&mut random);
        EventId::new(at, random)
    }
}
