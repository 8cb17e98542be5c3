//! The audit log (API.md §9): one event per material action, written by the store in the same
//! atomic change as the action itself (see [`crate::trail::Trail`]), and never changed after.

use crate::organization::StatusKind;
use crate::{ApiKeyId, OrganizationId, Timestamp};

crate::ids::ulid_id!(
    /// An audit event: `aud_<ULID>`, time-ordered.
    AuditEventId,
    "aud_"
);

/// Who did it: an API key (of its organization), or the operator — whoever runs the server,
/// through its subcommands or its own scheduled work (a reservation's expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    ApiKey {
        api_key_id: ApiKeyId,
        organization_id: OrganizationId,
    },
    Operator,
}

/// The kinds of audit event, written `noun.verb` like the webhook events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditEventType {
    OrganizationCreated,
    OrganizationUpdated,
    OrganizationSuspended,
    OrganizationResumed,
    OrganizationArchived,
    ApiKeyCreated,
    ApiKeyRotated,
    ApiKeyRevoked,
    ApiKeyKilled,
    CreditsGranted,
    CreditsAllocated,
    CreditsReclaimed,
    ReservationCreated,
    ReservationSettled,
    ReservationReleased,
    ReservationExpired,
    CreditConfigUpdated,
    WebhookEndpointCreated,
    WebhookEndpointUpdated,
    WebhookEndpointDeleted,
    KillSwitchRefused,
}

impl AuditEventType {
    pub const ALL: [Self; 21] = [
        Self::OrganizationCreated,
        Self::OrganizationUpdated,
        Self::OrganizationSuspended,
        Self::OrganizationResumed,
        Self::OrganizationArchived,
        Self::ApiKeyCreated,
        Self::ApiKeyRotated,
        Self::ApiKeyRevoked,
        Self::ApiKeyKilled,
        Self::CreditsGranted,
        Self::CreditsAllocated,
        Self::CreditsReclaimed,
        Self::ReservationCreated,
        Self::ReservationSettled,
        Self::ReservationReleased,
        Self::ReservationExpired,
        Self::CreditConfigUpdated,
        Self::WebhookEndpointCreated,
        Self::WebhookEndpointUpdated,
        Self::WebhookEndpointDeleted,
        Self::KillSwitchRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrganizationCreated => "organization.created",
            Self::OrganizationUpdated => "organization.updated",
            Self::OrganizationSuspended => "organization.suspended",
            Self::OrganizationResumed => "organization.resumed",
            Self::OrganizationArchived => "organization.archived",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRotated => "api_key.rotated",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::ApiKeyKilled => "api_key.killed",
            Self::CreditsGranted => "credits.granted",
            Self::CreditsAllocated => "credits.allocated",
            Self::CreditsReclaimed => "credits.reclaimed",
            Self::ReservationCreated => "reservation.created",
            Self::ReservationSettled => "reservation.settled",
            Self::ReservationReleased => "reservation.released",
            Self::ReservationExpired => "reservation.expired",
            Self::CreditConfigUpdated => "credit_config.updated",
            Self::WebhookEndpointCreated => "webhook_endpoint.created",
            Self::WebhookEndpointUpdated => "webhook_endpoint.updated",
            Self::WebhookEndpointDeleted => "webhook_endpoint.deleted",
            Self::KillSwitchRefused => "kill_switch.refused",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl std::fmt::Display for AuditEventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an audit event says beyond its type: rendered to JSON by the presenter port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditData {
    /// A lifecycle transition (creation has no `from`).
    Transition {
        from: Option<StatusKind>,
        to: StatusKind,
        reason: Option<String>,
    },
    /// Fields of an organization that a patch changed, by their API names.
    Changed { fields: Vec<&'static str> },
    ApiKey {
        api_key_id: ApiKeyId,
        /// The key that replaced it (a rotation).
        replaced_by: Option<ApiKeyId>,
    },
    Credits {
        credits: u64,
        transfer_id: Option<String>,
        from_organization_id: Option<OrganizationId>,
        to_organization_id: Option<OrganizationId>,
    },
    Reservation {
        reservation_id: String,
        credits: u64,
    },
    /// The spend controls as they are after the change.
    CreditConfig(crate::credits::CreditConfig),
    WebhookEndpoint {
        endpoint_id: String,
        url: String,
        status: &'static str,
    },
    KillSwitch {
        api_key_id: ApiKeyId,
        scope: &'static str,
        method: String,
        route: String,
    },
}

/// One audit event, as stored. `data` is the rendered JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub event_type: AuditEventType,
    pub occurred_at: Timestamp,
    /// The request that caused it; none for the operator's subcommands and scheduled work.
    pub request_id: Option<String>,
    /// The organization it is about: whose log shows it.
    pub organization_id: OrganizationId,
    pub actor: Actor,
    pub data: String,
}

/// What `GET /v1/audit-log` may filter on; `since` and `until` are inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub event_type: Option<AuditEventType>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    pub fn admits(&self, event: &AuditEvent) -> bool {
        self.event_type.is_none_or(|t| t == event.event_type)
            && self.since.is_none_or(|s| event.occurred_at >= s)
            && self.until.is_none_or(|u| event.occurred_at <= u)
    }
}

/// Requests refused by the kill switch are audited at most once per key per this window.
pub const KILL_SWITCH_AUDIT_WINDOW: time::Duration = time::Duration::minutes(1);
