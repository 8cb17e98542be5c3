use domain::audit::{Actor, AuditEvent};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::wire_time;

/// One audit event (API.md §9).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventDto {
    #[schema(example = "aud_01HXZ9G7KMV2QX8Y1S5RJW3B7T")]
    pub event_id: String,
    #[schema(example = "organization.suspended")]
    pub event_type: &'static str,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub occurred_at: String,
    /// The request that caused it (`X-Request-Id`); `null` for the operator's commands and the
    /// server's scheduled work.
    #[schema(example = "req_01HXZ9G7KMV2QX8Y1S5RJW3B7T")]
    pub request_id: Option<String>,
    /// The organization it is about: whose log shows it.
    pub organization_id: String,
    pub actor: ActorDto,
    /// What the event says beyond its type; one shape per type, e.g. a lifecycle transition
    /// `{"fromStatus", "toStatus", "reason"}`.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// Who did it: an API key (of its organization), or the operator.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActorDto {
    ApiKey {
        #[serde(rename = "apiKeyId")]
        api_key_id: String,
        #[serde(rename = "organizationId")]
        organization_id: String,
    },
    Operator,
}

impl From<&AuditEvent> for AuditEventDto {
    fn from(event: &AuditEvent) -> Self {
        Self {
            event_id: event.id.to_string(),
            event_type: event.event_type.as_str(),
            occurred_at: wire_time::other(event.occurred_at),
            request_id: event.request_id.clone(),
            organization_id: event.organization_id.to_string(),
            actor: match event.actor {
                Actor::ApiKey {
                    api_key_id,
                    organization_id,
                } => ActorDto::ApiKey {
                    api_key_id: api_key_id.to_string(),
                    organization_id: organization_id.to_string(),
                },
                Actor::Operator => ActorDto::Operator,
            },
            // Stored as the presenter rendered it: a JSON object. Were it ever unreadable, the
            // event still shows, with its raw text.
            data: serde_json::from_str(&event.data)
                .unwrap_or_else(|_| Value::String(event.data.clone())),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub items: Vec<AuditEventDto>,
    pub next_cursor: Option<String>,
}
