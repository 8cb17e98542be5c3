use domain::use_cases::{EndpointPatch, NewEndpoint};
use domain::webhooks::{Delivery, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{nullable, present};
use crate::wire_time;

/// A webhook endpoint (API.md §7). The signing secret is shown once, at creation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointDto {
    #[schema(example = "whe_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub id: String,
    #[schema(example = "https://hooks.example.com/layers")]
    pub url: String,
    /// Event types, or `["*"]` for every one (however the request wrote it: `"*"` or `["*"]`).
    pub events: Vec<String>,
    /// `own` or `all_children`.
    #[schema(example = "own")]
    pub scope: &'static str,
    /// `enabled`, `disabled` or `auto_paused`.
    #[schema(example = "enabled")]
    pub status: &'static str,
    pub description: Option<String>,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub created_at: String,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub updated_at: String,
}

impl From<&WebhookEndpoint> for EndpointDto {
    fn from(endpoint: &WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.as_str().to_owned(),
            events: endpoint.events.names(),
            scope: endpoint.scope.as_str(),
            status: endpoint.status.as_str(),
            description: endpoint.description.clone(),
            created_at: wire_time::other(endpoint.created_at),
            updated_at: wire_time::other(endpoint.updated_at),
        }
    }
}

/// `201` of creating an endpoint: the only time its signing secret is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedEndpointDto {
    #[serde(flatten)]
    pub endpoint: EndpointDto,
    /// `whsec_…`: deliveries carry `X-Layers-Signature: t=<unix secs>,v1=<hex
    /// HMAC-SHA256(signingSecret, "<t>.<raw body>")>`.
    #[schema(example = "whsec_…")]
    pub signing_secret: String,
}

impl From<&WebhookEndpoint> for CreatedEndpointDto {
    fn from(endpoint: &WebhookEndpoint) -> Self {
        Self {
            endpoint: EndpointDto::from(endpoint),
            signing_secret: endpoint.secret.expose().to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointList {
    pub items: Vec<EndpointDto>,
    pub next_cursor: Option<String>,
}

/// `DELETE /v1/webhook-endpoints/:id`.
#[derive(Serialize, ToSchema)]
pub struct DeletedEndpointDto {
    #[schema(example = "whe_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub id: String,
    pub deleted: bool,
}

/// One event's delivery to one endpoint.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    #[schema(example = "whd_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub id: String,
    pub endpoint_id: String,
    #[schema(example = "evt_01HXZ9G7KMV2QX8Y1S5RJW3B7T")]
    pub event_id: String,
    #[schema(example = "organization.suspended")]
    pub event_type: &'static str,
    /// `pending`, `held` (the owner is suspended), `succeeded`, `failed`, `abandoned` or
    /// `canceled`.
    #[schema(example = "pending")]
    pub status: &'static str,
    /// Attempts made so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The receiver's status code at the last attempt, if it answered.
    pub last_response_status: Option<u16>,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub created_at: String,
}

impl From<&Delivery> for DeliveryDto {
    fn from(delivery: &Delivery) -> Self {
        Self {
            id: delivery.id.to_string(),
            endpoint_id: delivery.endpoint_id.to_string(),
            event_id: delivery.event_id.to_string(),
            event_type: delivery.event_type.as_str(),
            status: delivery.shown_status(),
            attempts: delivery.attempts,
            last_error: delivery.last_error.clone(),
            last_response_status: delivery.last_response_status,
            last_attempt_at: delivery.last_attempt_at.map(wire_time::other),
            next_attempt_at: delivery.next_attempt_at.map(wire_time::other),
            created_at: wire_time::other(delivery.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub items: Vec<DeliveryDto>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/webhook-endpoints` (API.md §7).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointBody {
    /// An `https` URL of a public address (at most 2048 characters).
    #[schema(schema_with = crate::openapi::webhook_url)]
    pub url: String,
    /// 1–50 event types, or `"*"` (also written `["*"]`) for every one.
    #[serde(deserialize_with = "events")]
    #[schema(schema_with = crate::openapi::webhook_events)]
    pub events: Vec<String>,
    /// At most 500 characters, no NUL; `null` is none.
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// `own` (default) or `all_children` (needs `org:admin`); not nullable.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::openapi::endpoint_scope)]
    pub scope: Option<String>,
}

impl From<CreateEndpointBody> for NewEndpoint {
    fn from(body: CreateEndpointBody) -> Self {
        Self {
            url: body.url,
            events: body.events,
            description: body.description,
            scope: body.scope,
        }
    }
}

/// `PATCH /v1/webhook-endpoints/:id`: only the fields sent change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpointBody {
    /// An `https` URL of a public address (at most 2048 characters); not nullable.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::openapi::webhook_url)]
    pub url: Option<String>,
    /// 1–50 event types, or `"*"` (also written `["*"]`) for every one; not nullable.
    #[serde(default, deserialize_with = "present_events")]
    #[schema(schema_with = crate::openapi::webhook_events)]
    pub events: Option<Vec<String>>,
    /// At most 500 characters, no NUL; a string sets it, `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[^\u0000]*$")]
    pub description: Option<Option<String>>,
    /// `enabled` or `disabled` (enabling resets the failure count); not nullable.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::openapi::endpoint_status)]
    pub status: Option<String>,
}

impl From<PatchEndpointBody> for EndpointPatch {
    fn from(body: PatchEndpointBody) -> Self {
        Self {
            url: body.url,
            events: body.events,
            description: body.description,
            status: body.status,
        }
    }
}

/// `events` as API.md §7 writes it, "1–50 event types or `"*"`": the string `"*"`, or an array
/// (which may be `["*"]`). Both mean every event type and become `["*"]`, which the domain reads;
/// any other string is a `422` naming `events`. Use with `#[serde(deserialize_with)]`.
fn events<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Events;

    impl<'de> serde::de::Visitor<'de> for Events {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("\"*\" or an array of event types")
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            if value == "*" {
                Ok(vec!["*".to_owned()])
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Str(value), &self))
            }
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut names = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(name) = seq.next_element::<String>()? {
                names.push(name);
            }
            Ok(names)
        }
    }

    deserializer.deserialize_any(Events)
}

/// [`events`] for a PATCH: absent → `None`; `null` is a wrong type, like any value not `"*"` or
/// an array.
fn present_events<'de, D>(deserializer: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    events(deserializer).map(Some)
}
