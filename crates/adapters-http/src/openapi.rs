//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers' annotations
//! and the DTOs, so it cannot drift from the code.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, OneOfBuilder, SchemaFormat, SchemaType};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Object, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::presenter::WebhookEventDto;
use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Partner organizations control plane", version = "1.0.0",
        description = "Child organizations per customer: create, fund, mint keys, suspend (the kill switch), resume, archive."),
    paths(whoami, create, list, get, update, suspend, resume, archive, create_api_key, list_api_keys, delete_api_key, rotate_child_api_key, list_own_api_keys, kill_api_key, rotate_own_api_key, own_credits, child_credits, allocate, own_ledger, child_ledger, credit_config, update_credit_config, reserve, get_reservation, settle, release, create_endpoint, list_endpoints, get_endpoint, update_endpoint, delete_endpoint, list_deliveries, test_endpoint, replay_delivery, audit_log, healthz, readyz, metrics),
    components(schemas(dto::ErrorEnvelope, dto::ErrorBody, dto::FieldErrorDto, dto::SummaryDto, dto::CreditConfigDto, WebhookEventDto)),
    modifiers(&BearerAuth, &CommonHeaders),
    security(("bearerAuth" = [])),
    tags((name = "organizations", description = "The control plane over direct children (scope org:admin)"),
         (name = "keys", description = "API keys"),
         (name = "credits", description = "Wallets, allocation and the ledger"),
         (name = "webhooks", description = "Webhook endpoints and deliveries; every delivery's body is a WebhookEventDto"),
         (name = "audit", description = "The audit log"),
         (name = "operations", description = "Health and readiness"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lp_<env>_<handle>_<secret>")
                    .build(),
            ),
        );
    }
}

/// What every route shares, written once instead of on each handler: the `Idempotency-Key`
/// header of mutating routes, `X-Layers-Organization` outside the control plane's own routes,
/// and the `429 RATE_LIMITED` answer of every authenticated route.
struct CommonHeaders;

impl Modify for CommonHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let idempotency_key = header(
            "Idempotency-Key",
            "A UUID. A retry with the same key and body replays the first answer (Idempotent-Replayed: true); another body is 409 IDEMPOTENCY_CONFLICT.",
        );
        let acting = header(
            "X-Layers-Organization",
            "org_<uuid> of a direct child: act inside it (org:admin keys of its parent only).",
        );
        let rate_limited = ResponseBuilder::new()
            .description("RATE_LIMITED: over the key's per-minute limit for this endpoint class; see Retry-After")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build();
        let refusal = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let mutating = [&mut item.post, &mut item.patch, &mut item.delete];
            for operation in mutating.into_iter().flatten() {
                let mut idempotency_key = idempotency_key.clone();
                if path.ends_with("/credits/allocate") {
                    // API.md §6.2: without it, 400 IDEMPOTENCY_REQUIRED.
                    idempotency_key.required = Required::True;
                }
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(idempotency_key);
                let responses = &mut operation.responses.responses;
                responses.entry("409".to_owned()).or_insert_with(|| {
                    refusal("IDEMPOTENCY_CONFLICT (the key was used for another request) or CONFLICT (it is still running)")
                });
                responses
                    .entry("413".to_owned())
                    .or_insert_with(|| refusal("PAYLOAD_TOO_LARGE: the body is over 64 KiB"));
                responses.entry("422".to_owned()).or_insert_with(|| {
                    refusal("VALIDATION: the body or the Idempotency-Key is invalid")
                });
            }
            let all = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in all.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if !path.starts_with("/v1/organizations") {
                    operation
                        .parameters
                        .get_or_insert_with(Vec::new)
                        .push(acting.clone());
                    responses.entry("403".to_owned()).or_insert_with(|| {
                        refusal("FORBIDDEN_SCOPE: X-Layers-Organization needs an org:admin key of the child's parent")
                    });
                    responses.entry("404".to_owned()).or_insert_with(|| {
                        refusal("NOT_FOUND: X-Layers-Organization names no direct child of yours")
                    });
                    responses.entry("422".to_owned()).or_insert_with(|| {
                        refusal("VALIDATION: X-Layers-Organization is not an organization id")
                    });
                }
                responses.insert("429".to_owned(), RefOr::T(rate_limited.clone()));
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        response.headers.extend(response_headers(status == "429"));
                    }
                }
                // Suspend's body is optional (API.md §1.1): none at all, or the object.
                if let Some(body) = operation.request_body.as_mut() {
                    if path.ends_with("/suspend") {
                        body.required = Some(Required::False);
                    }
                }
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter_schema(&parameter.name, path) {
                        parameter.schema = Some(RefOr::T(schema));
                    }
                }
            }
        }
    }
}

/// The headers every answer of the API carries (API.md §1.2, §1.7; docs/rate-limits.md), and
/// `Retry-After` on a `429`.
fn response_headers(
    rate_limited: bool,
) -> impl Iterator<Item = (String, utoipa::openapi::header::Header)> {
    use utoipa::openapi::header::Header;
    let described = |schema: Schema, description: &str| {
        let mut header = Header::new(schema);
        header.description = Some(description.to_owned());
        header
    };
    let count = |description: &str| {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .build();
        described(Schema::Object(schema), description)
    };
    let text = |pattern: &str, description: &str| {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build();
        described(Schema::Object(schema), description)
    };
    let mut headers = vec![
        ("X-Request-Id", text("^req_[0-9A-HJKMNP-TV-Z]{26}$", "This request's id; an error body's requestId equals it.")),
        ("X-RateLimit-Limit", count("Requests per minute of this key in this endpoint class; 4294967295 where no limit applies.")),
        ("X-RateLimit-Remaining", count("Requests of this class the key may send now, back to back.")),
        ("X-RateLimit-Reset", count("Seconds until the key's budget in this class is full again.")),
        ("X-RateLimit-Endpoint-Class", text("^(read|write|work)$", "The budget this request counts against.")),
    ];
    if rate_limited {
        headers.push((
            "Retry-After",
            count("Seconds until the next request of this key and class is admitted."),
        ));
    }
    headers
        .into_iter()
        .map(|(name, header)| (name.to_owned(), header))
}

/// What the handlers accept, so generated clients and fuzzers send valid values: ids in either
/// form and any case, page sizes in range, the filters' values.
fn parameter_schema(name: &str, path: &str) -> Option<Schema> {
    let id = |prefix: &str| {
        let any_case: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c, c.to_ascii_uppercase())
                } else {
                    c.to_string()
                }
            })
            .collect();
        let hex = |n: usize| format!("[0-9a-fA-F]{{{n}}}");
        let pattern = format!(
            "^({any_case})?{}-{}-{}-{}-{}$",
            hex(8),
            hex(4),
            hex(4),
            hex(4),
            hex(12)
        );
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .build(),
        )
    };
    let one_of = |values: &[&str]| {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.to_vec()))
                .build(),
        )
    };
    match name {
        "orgId" => Some(id("org_")),
        // A bare UUID or the org_ form. The `uuid` alternative is what fuzzers can draw for a
        // header (they cannot always draw from a header's pattern).
        "X-Layers-Organization" => Some(Schema::AnyOf(
            AnyOfBuilder::new()
                .item(uuid())
                .item(id("org_"))
                .build(),
        )),
        "Idempotency-Key" => Some(uuid()),
        "eventType" if path.ends_with("/credits/events") => Some(one_of(&[
            "grant",
            "allocation",
            "usage",
            "reclaim",
            "adjustment",
        ])),
        "eventType" if path == "/v1/audit-log" => {
            let names: Vec<&str> = domain::audit::AuditEventType::ALL
                .iter()
                .map(|event_type| event_type.as_str())
                .collect();
            Some(one_of(&names))
        }
        "status" if path == "/v1/organizations" => {
            Some(one_of(&["active", "suspended", "archived"]))
        }
        // API.md §1.4: the Z form only, e.g. 2026-06-03T18:14:02.187Z (days 29-31 are accepted
        // too; the pattern keeps generated dates real in every month).
        "since" | "until" => Some(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom("date-time".to_owned())))
                .pattern(Some(
                    r"^(19[7-9][0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z$",
                ))
                .build(),
        )),
        "keyId" => Some(id("key_")),
        // The contract names these routes' parameter `id` (API.md §6.4, §7); its prefix is the
        // resource's.
        "id" if path.starts_with("/v1/credits/reservations/") => Some(id("rsv_")),
        "id" if path.starts_with("/v1/webhook-endpoints/") => Some(id("whe_")),
        "id" if path.starts_with("/v1/webhook-deliveries/") => Some(id("whd_")),
        "limit" => {
            let max = if path == "/v1/organizations" || path == "/v1/audit-log" {
                200
            } else {
                100
            };
            Some(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(max))
                    .build(),
            ))
        }
        _ => None,
    }
}

fn uuid() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".to_owned())))
            .build(),
    )
}

/// A string with no NUL (U+0000) of at most `max` characters.
fn text(min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(r"^[^\u0000]*$"))
}

/// Metadata (API.md §4.3): string → string, keys 1–40 characters, values ≤ 500, ≤ 50 keys, no NUL.
/// (The 16 KiB bound on the whole map has no JSON Schema keyword; it is in the description.)
fn metadata_object(nullable: bool) -> Object {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::Object, Type::Null])
    } else {
        SchemaType::new(Type::Object)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .property_names(Some(text(1, 40).build()))
        .additional_properties(Some(text(0, 500)))
        .max_properties(Some(50))
        .description(Some(
            "String → string: keys 1–40 characters, values ≤ 500 (\"\" removes or stores nothing), ≤ 50 keys, ≤ 16 KiB as JSON, no NUL.",
        ))
        .build()
}

pub(crate) fn metadata() -> Object {
    metadata_object(false)
}

pub(crate) fn nullable_metadata() -> Object {
    metadata_object(true)
}

/// A plausible address as `BillingEmail` checks it (one `@`, a local part of 1–64 characters, a
/// dotted domain with no empty label, no spaces or control characters, ≤ 254 characters), or
/// `null`.
pub(crate) fn billing_email() -> Object {
    const OK: &str = r"[^@.\s\u0000-\u001f\u007f-\u009f]";
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(254))
        .pattern(Some(format!(r"^(?:{OK}|\.){{1,64}}@{OK}+(?:\.{OK}+)+$")))
        .build()
}

/// 1–64 scope names (API.md §2.2).
pub(crate) fn scopes() -> ArrayBuilder {
    let names: Vec<&str> = domain::api_key::Scope::ALL
        .iter()
        .map(|scope| scope.as_str())
        .collect();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .max_items(Some(64))
}

/// `live` or `test`; not nullable.
pub(crate) fn key_env() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["live", "test"]))
        .build()
}

/// A webhook endpoint's `url` as the server takes it (API.md §7): `https` (the sender's policy
/// outside local-development mode), a host name, an optional port, path and query, no
/// credentials, no fragment, at most 2048 characters. The pattern is a strict subset of what
/// `WebhookUrl::parse` accepts: plain ASCII host labels with no `--` (so never an `xn--` label
/// that IDNA could refuse) and a last label starting with a letter (so never read as an IPv4
/// address). A literal public IP is accepted too but not described; whether the host resolves,
/// and only to public addresses, depends on DNS at request time, not on the request's shape.
pub(crate) fn webhook_url() -> Object {
    const LABEL: &str = "[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*";
    const TOP: &str = "[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*";
    const PORT: &str =
        "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]";
    const PCHAR: &str = "[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}";
    const QCHAR: &str = "[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2}";
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(domain::webhooks::MAX_URL_CHARS))
        .pattern(Some(format!(
            r"^https://(?:{LABEL}\.)+{TOP}(?::(?:{PORT}))?(?:/(?:{PCHAR})*)*(?:\?(?:{QCHAR})*)?$"
        )))
        .description(Some(
            "An absolute https URL naming a host that resolves to public addresses only: no credentials, no fragment, at most 2048 characters.",
        ))
        .build()
}

/// `events`: `["*"]` alone (every type), or 1–50 event types (API.md §7); not nullable.
pub(crate) fn webhook_events() -> Schema {
    let names: Vec<&str> = domain::webhooks::EventType::ALL
        .iter()
        .map(|event_type| event_type.as_str())
        .collect();
    let every = ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["*"])),
        )
        .min_items(Some(1))
        .max_items(Some(1));
    let only = ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .max_items(Some(domain::webhooks::MAX_EVENT_TYPES));
    let star = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["*"]));
    Schema::OneOf(
        OneOfBuilder::new()
            .item(star)
            .item(every)
            .item(only)
            .description(Some(
                "\"*\" (or [\"*\"]) for every event type, or 1–50 event types (repeats count \
                 once). An endpoint shows every event type as [\"*\"].",
            ))
            .build(),
    )
}

/// A new endpoint's `scope`: `own` (default) or `all_children`; not nullable.
pub(crate) fn endpoint_scope() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["own", "all_children"]))
        .build()
}

/// The `status` a caller may set on an endpoint (`auto_paused` is the server's); not nullable.
pub(crate) fn endpoint_status() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["enabled", "disabled"]))
        .build()
}

fn header(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}
