//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers' annotations
//! and the DTOs, so it cannot drift from the code.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
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
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(idempotency_key.clone());
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
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter_schema(&parameter.name, path) {
                        parameter.schema = Some(RefOr::T(schema));
                    }
                }
            }
        }
    }
}

/// What the handlers accept, so generated clients and fuzzers send valid values: ids in either
/// form and any case, page sizes in range.
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
    match name {
        "orgId" | "X-Layers-Organization" => Some(id("org_")),
        "keyId" => Some(id("key_")),
        "reservationId" => Some(id("rsv_")),
        "endpointId" => Some(id("whe_")),
        "deliveryId" => Some(id("whd_")),
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

fn header(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}
