//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers' annotations
//! and the DTOs, so it cannot drift from the code.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Partner organizations control plane", version = "1.0.0",
        description = "Child organizations per customer: create, fund, mint keys, suspend (the kill switch), resume, archive."),
    paths(whoami, create, list, get, update, suspend, resume, archive, create_api_key, list_api_keys, delete_api_key, rotate_child_api_key, list_own_api_keys, kill_api_key, rotate_own_api_key, healthz, readyz),
    components(schemas(dto::ErrorEnvelope, dto::ErrorBody, dto::FieldErrorDto, dto::SummaryDto, dto::CreditConfigDto)),
    modifiers(&BearerAuth),
    security(("bearerAuth" = [])),
    tags((name = "organizations", description = "The control plane over direct children (scope org:admin)"),
         (name = "keys", description = "API keys"),
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
