//! Every route of the API, each declaring the scope it needs as its first step (deny by
//! default), then validating its input, then calling one use case.

mod api_keys;
mod audit;
mod credits;
mod operations;
mod organizations;
mod reservations;
mod webhooks;
mod whoami;

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::middleware::from_fn;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};
use domain::api_key::Scope;
use domain::policy::{self, Principal};
use domain::{ApiKeyId, DomainError, OrganizationId};

use crate::error::ApiError;
use crate::{gate, ApiState};

pub(crate) use api_keys::{
    __path_create_api_key, __path_delete_api_key, __path_kill_api_key, __path_list_api_keys,
    __path_list_own_api_keys, __path_rotate_child_api_key, __path_rotate_own_api_key,
};
pub(crate) use audit::__path_audit_log;
pub(crate) use credits::{
    __path_allocate, __path_child_credits, __path_child_ledger, __path_credit_config,
    __path_own_credits, __path_own_ledger, __path_update_credit_config,
};
pub(crate) use operations::{__path_healthz, __path_metrics, __path_readyz};
pub(crate) use organizations::{
    __path_archive, __path_create, __path_get, __path_list, __path_resume, __path_suspend,
    __path_update,
};
pub(crate) use reservations::{
    __path_get_reservation, __path_release, __path_reserve, __path_settle,
};
pub(crate) use webhooks::{
    __path_create_endpoint, __path_delete_endpoint, __path_get_endpoint, __path_list_deliveries,
    __path_list_endpoints, __path_replay_delivery, __path_test_endpoint, __path_update_endpoint,
};
pub(crate) use whoami::__path_whoami;

pub fn configure(config: &mut web::ServiceConfig, state: ApiState) {
    config.service(
        web::scope("")
            .app_data(web::Data::new(state))
            .wrap(from_fn(gate::gate))
            .service(resource("/healthz", "GET").route(web::get().to(operations::healthz)))
            .service(resource("/readyz", "GET").route(web::get().to(operations::readyz)))
            .service(resource("/metrics", "GET").route(web::get().to(operations::metrics)))
            .service(resource("/openapi.json", "GET").route(web::get().to(operations::openapi)))
            .service(resource("/v1/whoami", "GET").route(web::get().to(whoami::whoami)))
            .service(
                resource("/v1/organizations", "POST, GET")
                    .route(web::post().to(organizations::create))
                    .route(web::get().to(organizations::list)),
            )
            .service(
                resource("/v1/organizations/{orgId}", "GET, PATCH, DELETE")
                    .route(web::get().to(organizations::get))
                    .route(web::patch().to(organizations::update))
                    .route(web::delete().to(organizations::archive)),
            )
            .service(
                resource("/v1/organizations/{orgId}/suspend", "POST")
                    .route(web::post().to(organizations::suspend)),
            )
            .service(
                resource("/v1/organizations/{orgId}/resume", "POST")
                    .route(web::post().to(organizations::resume)),
            )
            .service(
                resource("/v1/organizations/{orgId}/api-keys", "POST, GET")
                    .route(web::post().to(api_keys::create_api_key))
                    .route(web::get().to(api_keys::list_api_keys)),
            )
            .service(
                resource("/v1/organizations/{orgId}/api-keys/{keyId}", "DELETE")
                    .route(web::delete().to(api_keys::delete_api_key)),
            )
            .service(
                resource("/v1/organizations/{orgId}/api-keys/{keyId}/rotate", "POST")
                    .route(web::post().to(api_keys::rotate_child_api_key)),
            )
            .service(
                resource("/v1/api-keys", "GET").route(web::get().to(api_keys::list_own_api_keys)),
            )
            .service(resource("/v1/credits", "GET").route(web::get().to(credits::own_credits)))
            .service(
                resource("/v1/credits/events", "GET").route(web::get().to(credits::own_ledger)),
            )
            .service(
                resource("/v1/organizations/{orgId}/credit-config", "GET, PATCH")
                    .route(web::get().to(credits::credit_config))
                    .route(web::patch().to(credits::update_credit_config)),
            )
            .service(
                resource("/v1/credits/reservations", "POST")
                    .route(web::post().to(reservations::reserve)),
            )
            .service(
                resource("/v1/credits/reservations/{id}", "GET")
                    .route(web::get().to(reservations::get_reservation)),
            )
            .service(
                resource("/v1/credits/reservations/{id}/settle", "POST")
                    .route(web::post().to(reservations::settle)),
            )
            .service(
                resource("/v1/credits/reservations/{id}/release", "POST")
                    .route(web::post().to(reservations::release)),
            )
            .service(
                resource("/v1/organizations/{orgId}/credits", "GET")
                    .route(web::get().to(credits::child_credits)),
            )
            .service(
                resource("/v1/organizations/{orgId}/credits/events", "GET")
                    .route(web::get().to(credits::child_ledger)),
            )
            .service(
                resource("/v1/organizations/{orgId}/credits/allocate", "POST")
                    .route(web::post().to(credits::allocate)),
            )
            .service(
                resource("/v1/api-keys/{keyId}/kill", "POST")
                    .route(web::post().to(api_keys::kill_api_key)),
            )
            .service(
                resource("/v1/api-keys/{keyId}/rotate", "POST")
                    .route(web::post().to(api_keys::rotate_own_api_key)),
            )
            .service(
                resource("/v1/webhook-endpoints", "POST, GET")
                    .route(web::post().to(webhooks::create_endpoint))
                    .route(web::get().to(webhooks::list_endpoints)),
            )
            .service(
                resource("/v1/webhook-endpoints/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(webhooks::get_endpoint))
                    .route(web::patch().to(webhooks::update_endpoint))
                    .route(web::delete().to(webhooks::delete_endpoint)),
            )
            .service(
                resource("/v1/webhook-endpoints/{id}/deliveries", "GET")
                    .route(web::get().to(webhooks::list_deliveries)),
            )
            .service(
                resource("/v1/webhook-endpoints/{id}/test", "POST")
                    .route(web::post().to(webhooks::test_endpoint)),
            )
            .service(
                resource("/v1/webhook-deliveries/{id}/replay", "POST")
                    .route(web::post().to(webhooks::replay_delivery)),
            )
            .service(resource("/v1/audit-log", "GET").route(web::get().to(audit::audit_log)))
            .default_service(web::to(|| async {
                Err::<web::Json<()>, _>(ApiError::not_found_route())
            })),
    );
}

/// A route whose wrong methods answer `405` in the error envelope, with the `Allow` header
/// RFC 9110 asks for.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut response = ApiError::method_not_allowed().error_response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        response
    }))
}

/// The authenticated caller, admitted by the gate.
pub struct Caller(pub Principal);

impl Caller {
    /// The route's scope check; the use case checks it too, for Rust callers of the domain.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        policy::require_scope(&self.0, scope).map_err(ApiError::from)
    }

    /// A route either of two scopes opens; refused naming `named` (see
    /// [`policy::require_either_scope`]).
    pub fn require_either(&self, named: Scope, also: Scope) -> Result<(), ApiError> {
        policy::require_either_scope(&self.0, named, also).map_err(ApiError::from)
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(gate::ActingRefused(refused)) = request.extensions_mut().remove() {
            return ready(Err(refused));
        }
        let principal = request.extensions().get::<Principal>().cloned();
        ready(
            principal
                .map(Caller)
                .ok_or_else(|| DomainError::Unauthenticated.into()),
        )
    }
}

pub fn organization_id(raw: &str) -> Result<OrganizationId, ApiError> {
    OrganizationId::parse(raw).map_err(|e| ApiError::invalid("orgId", &e.to_string()))
}

pub fn api_key_id(raw: &str) -> Result<ApiKeyId, ApiError> {
    ApiKeyId::parse(raw).map_err(|e| ApiError::invalid("keyId", &e.to_string()))
}
