//! The domain's [`Presenter`] port: what the domain records for others to read — webhook event
//! bodies (API.md §7) and the `data` of audit events (§9) — rendered in the API's wire format.
//! The resources inside an event (`data.object`) are the same DTOs the routes answer with, so
//! there is one way to render each resource: an organization with its six-digit `+00:00`
//! timestamps, a key without its secret, everything else in the `Z` form.

use domain::audit::AuditData;
use domain::ports::Presenter;
use domain::trail::{EventDraft, EventSubject};
use domain::webhooks::EventId;
use domain::Timestamp;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::dto::{ApiKeyDto, CreditConfigDto, OrganizationDto};
use crate::wire_time;

/// The HTTP adapter's presenter; the server puts it into `Ports.presenter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WirePresenter;

/// The body of a webhook event, as every delivery of it sends it (API.md §7).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEventDto {
    #[schema(example = "evt_01HXZ9G7KMV2QX8Y1S5RJW3B7T")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "organization.suspended")]
    pub event_type: &'static str,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub created_at: String,
    /// On a replay only: the id of the event it re-sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    pub data: WebhookEventData,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEventData {
    /// The organization the event is about.
    pub organization_id: String,
    /// The organization object (§4.1), the key object (§5.1), the credits moved
    /// (`{"transferId", "credits", "fromOrganizationId", "toOrganizationId"}`), or for
    /// `test.ping` `{"endpointId"}`.
    pub object: EventObject,
    /// The suspension's reason on `organization.suspended`; otherwise `null`.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventObject {
    Organization(OrganizationDto),
    ApiKey(ApiKeyDto),
    Credits(CreditsMovedDto),
    Ping(PingDto),
}

/// Credits moved between a parent and a child (`credits.allocated`, `credits.reclaimed`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditsMovedDto {
    #[schema(example = "txn_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub transfer_id: String,
    pub credits: u64,
    pub from_organization_id: String,
    pub to_organization_id: String,
}

/// The object of a `test.ping`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingDto {
    #[schema(example = "whe_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub endpoint_id: String,
}

impl From<&EventDraft> for WebhookEventDto {
    fn from(event: &EventDraft) -> Self {
        let object = match &event.subject {
            EventSubject::Organization(org) => {
                EventObject::Organization(OrganizationDto::from(org))
            }
            // The key as it stood when the event happened.
            EventSubject::ApiKey(key) => EventObject::ApiKey(ApiKeyDto::at(key, event.created_at)),
            EventSubject::Credits {
                transfer_id,
                credits,
                from_organization_id,
                to_organization_id,
                ..
            } => EventObject::Credits(CreditsMovedDto {
                transfer_id: transfer_id.clone(),
                credits: *credits,
                from_organization_id: from_organization_id.to_string(),
                to_organization_id: to_organization_id.to_string(),
            }),
            EventSubject::Ping { endpoint_id, .. } => EventObject::Ping(PingDto {
                endpoint_id: endpoint_id.to_string(),
            }),
        };
        Self {
            id: event.id.to_string(),
            event_type: event.event_type.as_str(),
            created_at: wire_time::other(event.created_at),
            replay_of: None,
            data: WebhookEventData {
                organization_id: event.organization_id().to_string(),
                object,
                reason: event.reason.clone(),
            },
        }
    }
}

impl Presenter for WirePresenter {
    fn event_body(&self, event: &EventDraft) -> String {
        to_json(&WebhookEventDto::from(event))
    }

    /// The original body with a new `id` and `createdAt`, and `replayOf` naming the original's
    /// id (right after `createdAt`; `data` and every other field kept verbatim). A replay of a
    /// replay names the event it re-sends, not the first one.
    fn replay_body(&self, original: &str, id: EventId, created_at: Timestamp) -> String {
        let original: Map<String, Value> = match serde_json::from_str(original) {
            Ok(Value::Object(fields)) => fields,
            // Every stored body was rendered by `event_body`; anything else is kept as `data`.
            Ok(other) => Map::from_iter([("data".to_owned(), other)]),
            Err(_) => Map::from_iter([("data".to_owned(), Value::String(original.to_owned()))]),
        };
        let replay_of = original.get("id").cloned().unwrap_or(Value::Null);
        let mut replay = Map::new();
        replay.insert("id".to_owned(), Value::String(id.to_string()));
        replay.insert(
            "type".to_owned(),
            original.get("type").cloned().unwrap_or(Value::Null),
        );
        replay.insert(
            "createdAt".to_owned(),
            Value::String(wire_time::other(created_at)),
        );
        replay.insert("replayOf".to_owned(), replay_of);
        for (field, value) in original {
            if !matches!(field.as_str(), "id" | "type" | "createdAt" | "replayOf") {
                replay.insert(field, value);
            }
        }
        to_json(&Value::Object(replay))
    }

    fn audit_data(&self, data: &AuditData) -> String {
        let id = |id: &dyn std::fmt::Display| id.to_string();
        let value = match data {
            AuditData::Transition { from, to, reason } => json!({
                "fromStatus": from.map(|s| s.as_str()),
                "toStatus": to.as_str(),
                "reason": reason,
            }),
            AuditData::Changed { fields } => json!({ "fields": fields }),
            AuditData::ApiKey {
                api_key_id,
                replaced_by,
            } => json!({
                "apiKeyId": id(api_key_id),
                "replacedBy": replaced_by.map(|k| id(&k)),
            }),
            AuditData::Credits {
                credits,
                transfer_id,
                from_organization_id,
                to_organization_id,
            } => json!({
                "credits": credits,
                "transferId": transfer_id,
                "fromOrganizationId": from_organization_id.map(|o| id(&o)),
                "toOrganizationId": to_organization_id.map(|o| id(&o)),
            }),
            AuditData::Reservation {
                reservation_id,
                credits,
            } => json!({
                "reservationId": reservation_id,
                "credits": credits,
            }),
            AuditData::CreditConfig(config) => {
                serde_json::to_value(CreditConfigDto::from(config)).unwrap_or_else(|_| json!({}))
            }
            AuditData::WebhookEndpoint {
                endpoint_id,
                url,
                status,
            } => json!({
                "endpointId": endpoint_id,
                "url": url,
                "status": status,
            }),
            AuditData::KillSwitch {
                api_key_id,
                scope,
                method,
                route,
            } => json!({
                "apiKeyId": id(api_key_id),
                "scope": scope,
                "method": method,
                "route": route,
            }),
        };
        to_json(&value)
    }
}

/// Serializing these plain DTOs cannot fail (string keys, no maps of other keys, no floats).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use domain::api_key::{
        KeyEnv, KeyHandle, KeyName, KeyStatus, RateLimitTier, Scope, Scopes, SecretHash,
    };
    use domain::credits::CreditConfig;
    use domain::organization::{
        Metadata, Organization, OrganizationName, OrganizationStatus, Revision, StatusKind,
    };
    use domain::webhooks::{EndpointId, EventType};
    use domain::{ApiKeyId, OrganizationId};
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_offset_datetime(datetime!(2026-06-03 18:14:02.187654 UTC))
            .plus(time::Duration::seconds(seconds))
    }

    fn org_id(n: u128) -> OrganizationId {
        OrganizationId::from_uuid(Uuid::from_u128(n))
    }

    fn event_id(n: u8) -> EventId {
        EventId::new(at(0), [n; 10])
    }

    fn parse(body: &str) -> Value {
        serde_json::from_str(body).unwrap()
    }

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn organization() -> Organization {
        Organization {
            id: org_id(2),
            parent_id: Some(org_id(1)),
            name: OrganizationName::parse("Acme Coffee").unwrap(),
            status: OrganizationStatus::Suspended { since: at(5) },
            metadata: Metadata::from_stored(BTreeMap::from([(
                "plan".to_owned(),
                "growth".to_owned(),
            )])),
            billing_email: None,
            created_at: at(0),
            updated_at: at(5),
            revision: Revision::INITIAL,
        }
    }

    fn draft(event_type: EventType, subject: EventSubject, reason: Option<&str>) -> EventDraft {
        EventDraft {
            id: event_id(7),
            event_type,
            created_at: at(5),
            subject,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn an_organization_event_shows_the_organization_object_as_the_api_does() {
        let org = organization();
        let body = WirePresenter.event_body(&draft(
            EventType::OrganizationSuspended,
            EventSubject::Organization(org.clone()),
            Some("unpaid invoice"),
        ));
        let event = parse(&body);
        assert_eq!(keys(&event), ["id", "type", "createdAt", "data"]);
        assert_eq!(event["id"], event_id(7).to_string());
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["type"], "organization.suspended");
        assert_eq!(event["createdAt"], "2026-06-03T18:14:07.187Z");
        let data = &event["data"];
        assert_eq!(keys(data), ["organizationId", "object", "reason"]);
        assert_eq!(data["organizationId"], org.id.to_string());
        assert_eq!(data["reason"], "unpaid invoice");
        // Exactly the organization object of the API (one way to render it).
        assert_eq!(
            data["object"],
            serde_json::to_value(OrganizationDto::from(&org)).unwrap()
        );
        assert_eq!(data["object"]["status"], "suspended");
        assert_eq!(
            data["object"]["updatedAt"],
            "2026-06-03T18:14:07.187654+00:00"
        );
        assert_eq!(data["object"]["metadata"], json!({"plan": "growth"}));
    }

    #[test]
    fn reason_is_null_when_there_is_none() {
        let body = WirePresenter.event_body(&draft(
            EventType::OrganizationResumed,
            EventSubject::Organization(organization()),
            None,
        ));
        let event = parse(&body);
        assert!(event["data"]["reason"].is_null());
        assert!(event["data"].as_object().unwrap().contains_key("reason"));
    }

    #[test]
    fn a_key_event_shows_the_key_object_without_a_secret() {
        let key = domain::api_key::ApiKey {
            id: ApiKeyId::from_uuid(Uuid::from_u128(9)),
            organization_id: org_id(2),
            name: KeyName::parse("sync").unwrap(),
            env: KeyEnv::Live,
            handle: KeyHandle::from_random([0; 10]),
            secret_hash: SecretHash::from_bytes([3; 32]),
            scopes: Scopes::new([Scope::CreditsRead]),
            rate_limit_tier: RateLimitTier::Standard,
            status: KeyStatus::Active,
            created_at: at(0),
            last_used_at: None,
            rotated_at: None,
            superseded: None,
        };
        let body = WirePresenter.event_body(&draft(
            EventType::ApiKeyCreated,
            EventSubject::ApiKey(key.clone()),
            None,
        ));
        let event = parse(&body);
        assert_eq!(event["data"]["organizationId"], org_id(2).to_string());
        let object = &event["data"]["object"];
        assert_eq!(
            *object,
            serde_json::to_value(ApiKeyDto::at(&key, at(5))).unwrap()
        );
        assert_eq!(object["createdAt"], "2026-06-03T18:14:02.187Z");
        assert_eq!(object["prefix"], key.prefix());
        assert!(!body.contains("secret"), "{body}");
    }

    #[test]
    fn a_credits_event_shows_the_transfer() {
        let body = WirePresenter.event_body(&draft(
            EventType::CreditsAllocated,
            EventSubject::Credits {
                organization_id: org_id(2),
                transfer_id: "txn_00000000-0000-0000-0000-000000000005".to_owned(),
                credits: 5000,
                from_organization_id: org_id(1),
                to_organization_id: org_id(2),
            },
            None,
        ));
        let event = parse(&body);
        assert_eq!(event["type"], "credits.allocated");
        assert_eq!(event["data"]["organizationId"], org_id(2).to_string());
        assert_eq!(
            event["data"]["object"],
            json!({
                "transferId": "txn_00000000-0000-0000-0000-000000000005",
                "credits": 5000,
                "fromOrganizationId": org_id(1).to_string(),
                "toOrganizationId": org_id(2).to_string(),
            })
        );
        assert_eq!(
            keys(&event["data"]["object"]),
            [
                "transferId",
                "credits",
                "fromOrganizationId",
                "toOrganizationId"
            ]
        );
    }

    #[test]
    fn a_ping_names_its_endpoint() {
        let endpoint = EndpointId::from_uuid(Uuid::from_u128(4));
        let body = WirePresenter.event_body(&draft(
            EventType::TestPing,
            EventSubject::Ping {
                organization_id: org_id(2),
                endpoint_id: endpoint,
            },
            None,
        ));
        let event = parse(&body);
        assert_eq!(event["type"], "test.ping");
        assert_eq!(
            event["data"]["object"],
            json!({"endpointId": endpoint.to_string()})
        );
        assert!(event["data"]["object"]["endpointId"]
            .as_str()
            .unwrap()
            .starts_with("whe_"));
    }

    #[test]
    fn a_replay_is_the_same_event_under_a_new_id_and_time_naming_the_original() {
        let original = WirePresenter.event_body(&draft(
            EventType::OrganizationSuspended,
            EventSubject::Organization(organization()),
            Some("why"),
        ));
        let new_id = event_id(8);
        let replay = WirePresenter.replay_body(&original, new_id, at(3600));
        let (original, replay) = (parse(&original), parse(&replay));
        assert_eq!(
            keys(&replay),
            ["id", "type", "createdAt", "replayOf", "data"]
        );
        assert_eq!(replay["id"], new_id.to_string());
        assert_eq!(replay["createdAt"], "2026-06-03T19:14:02.187Z");
        assert_eq!(replay["replayOf"], original["id"]);
        assert_eq!(replay["type"], original["type"]);
        assert_eq!(replay["data"], original["data"]);

        // A replay of a replay names the event it re-sends.
        let again = WirePresenter.replay_body(&replay.to_string(), event_id(9), at(7200));
        let again = parse(&again);
        assert_eq!(again["replayOf"], new_id.to_string());
        assert_eq!(again["data"], original["data"]);
        assert_eq!(
            keys(&again),
            ["id", "type", "createdAt", "replayOf", "data"]
        );
    }

    fn audit(data: AuditData) -> Value {
        parse(&WirePresenter.audit_data(&data))
    }

    #[test]
    fn audit_data_of_every_kind_is_a_camel_case_object() {
        assert_eq!(
            audit(AuditData::Transition {
                from: None,
                to: StatusKind::Active,
                reason: None
            }),
            json!({"fromStatus": null, "toStatus": "active", "reason": null})
        );
        assert_eq!(
            audit(AuditData::Transition {
                from: Some(StatusKind::Active),
                to: StatusKind::Suspended,
                reason: Some("unpaid".to_owned())
            }),
            json!({"fromStatus": "active", "toStatus": "suspended", "reason": "unpaid"})
        );
        assert_eq!(
            audit(AuditData::Changed {
                fields: vec!["name", "metadata"]
            }),
            json!({"fields": ["name", "metadata"]})
        );
        let (old, new) = (
            ApiKeyId::from_uuid(Uuid::from_u128(1)),
            ApiKeyId::from_uuid(Uuid::from_u128(2)),
        );
        assert_eq!(
            audit(AuditData::ApiKey {
                api_key_id: old,
                replaced_by: Some(new)
            }),
            json!({"apiKeyId": old.to_string(), "replacedBy": new.to_string()})
        );
        assert_eq!(
            audit(AuditData::ApiKey {
                api_key_id: old,
                replaced_by: None
            }),
            json!({"apiKeyId": old.to_string(), "replacedBy": null})
        );
        assert_eq!(
            audit(AuditData::Credits {
                credits: 10,
                transfer_id: Some("txn_x".to_owned()),
                from_organization_id: Some(org_id(1)),
                to_organization_id: Some(org_id(2)),
            }),
            json!({"credits": 10, "transferId": "txn_x",
                   "fromOrganizationId": org_id(1).to_string(),
                   "toOrganizationId": org_id(2).to_string()})
        );
        assert_eq!(
            audit(AuditData::Credits {
                credits: 10,
                transfer_id: None,
                from_organization_id: None,
                to_organization_id: Some(org_id(2)),
            }),
            json!({"credits": 10, "transferId": null, "fromOrganizationId": null,
                   "toOrganizationId": org_id(2).to_string()})
        );
        assert_eq!(
            audit(AuditData::Reservation {
                reservation_id: "rsv_x".to_owned(),
                credits: 3
            }),
            json!({"reservationId": "rsv_x", "credits": 3})
        );
        assert_eq!(
            audit(AuditData::CreditConfig(CreditConfig {
                monthly_credit_cap: Some(100),
                refill_threshold: None,
                refill_amount: None,
                auto_refill_enabled: false,
            })),
            json!({"monthlyCreditCap": 100, "refillThreshold": null, "refillAmount": null,
                   "autoRefillEnabled": false})
        );
        assert_eq!(
            audit(AuditData::WebhookEndpoint {
                endpoint_id: "whe_x".to_owned(),
                url: "https://example.com/h".to_owned(),
                status: "enabled"
            }),
            json!({"endpointId": "whe_x", "url": "https://example.com/h", "status": "enabled"})
        );
        assert_eq!(
            audit(AuditData::KillSwitch {
                api_key_id: old,
                scope: "organization",
                method: "GET".to_owned(),
                route: "/v1/whoami".to_owned(),
            }),
            json!({"apiKeyId": old.to_string(), "scope": "organization", "method": "GET",
                   "route": "/v1/whoami"})
        );
    }
}
