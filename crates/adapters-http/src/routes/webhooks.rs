//! Webhooks (API.md §7): the acting organization's endpoints and their deliveries.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::api_key::Scope;
use domain::idempotency::StoredResponse;
use domain::pagination::Page;
use domain::webhooks::{Delivery, DeliveryId, EndpointId, WebhookEndpoint};

use super::Caller;
use crate::dto::{
    CreateEndpointBody, CreatedEndpointDto, DeletedEndpointDto, DeliveryDto, DeliveryList,
    EndpointDto, EndpointList, ErrorEnvelope, PatchEndpointBody,
};
use crate::error::ApiError;
use crate::query::Query;
use crate::{body, cursor, idempotent, ApiState};

const ENDPOINTS: &str = "webhook_endpoints";
const DELIVERIES: &str = "webhook_deliveries";

pub fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).map_err(|e| ApiError::invalid("id", &e.to_string()))
}

pub fn delivery_id(raw: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(raw).map_err(|e| ApiError::invalid("id", &e.to_string()))
}

fn render_endpoint(
    status: StatusCode,
) -> impl Fn(&WebhookEndpoint) -> StoredResponse + Send + Sync + 'static {
    move |endpoint: &WebhookEndpoint| idempotent::render(status, &EndpointDto::from(endpoint))
}

fn render_delivery() -> impl Fn(&Delivery) -> StoredResponse + Send + Sync + 'static {
    |delivery: &Delivery| idempotent::render(StatusCode::ACCEPTED, &DeliveryDto::from(delivery))
}

/// Create an endpoint of the acting organization. The answer carries `signingSecret`, shown this
/// once. `scope: "all_children"` (this organization's events and every direct child's) needs
/// `org:admin`, on the caller's own organization.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", request_body = CreateEndpointBody,
    responses(
        (status = 201, body = CreatedEndpointDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:write; all_children also org:admin", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the acting organization is archived", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: url (https, public address), events, description or scope", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn create_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let bytes = body::read(&request, payload).await?;
    let render = |endpoint: &WebhookEndpoint| {
        idempotent::render(StatusCode::CREATED, &CreatedEndpointDto::from(endpoint))
    };
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render,
        async |idempotency| {
            let input: CreateEndpointBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .create_webhook_endpoint(&caller.0, input.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// The acting organization's endpoints, newest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks",
    params(
        ("limit" = Option<usize>, Query, description = "1-100, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = EndpointList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:read", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: bad limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn list_endpoints(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksRead)?;
    let page_request = Query::parse(&request, &["limit", "cursor"])?.page(ENDPOINTS, 25, 100)?;
    let page = state
        .control_plane
        .list_webhook_endpoints(&caller.0, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(endpoint_list(page)))
}

/// One endpoint of the acting organization.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "whe_-prefixed or bare UUID")),
    responses(
        (status = 200, body = EndpointDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:read", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such endpoint in the acting organization", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn get_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksRead)?;
    let id = endpoint_id(&path)?;
    let endpoint = state
        .control_plane
        .get_webhook_endpoint(&caller.0, id)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointDto::from(&endpoint)))
}

/// Change an endpoint: `url`, `events`, `description` (`null` clears it), `status` (`enabled` or
/// `disabled`; enabling an `auto_paused` endpoint resets its failure count). Only the fields
/// sent change.
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", request_body = PatchEndpointBody,
    params(("id" = String, Path, description = "whe_-prefixed or bare UUID")),
    responses(
        (status = 200, body = EndpointDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such endpoint in the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the acting organization is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id, url, events, description or status", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn update_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = endpoint_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render_endpoint(StatusCode::OK),
        async |idempotency| {
            let patch: PatchEndpointBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .update_webhook_endpoint(&caller.0, id, patch.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// Delete an endpoint; its deliveries still pending are canceled.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "whe_-prefixed or bare UUID")),
    responses(
        (status = 200, body = DeletedEndpointDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such endpoint in the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the acting organization is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn delete_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = endpoint_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    let render = |deleted: &WebhookEndpoint| {
        let dto = DeletedEndpointDto {
            id: deleted.id.to_string(),
            deleted: true,
        };
        idempotent::render(StatusCode::OK, &dto)
    };
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render,
        async |idempotency| {
            body::none(&bytes)?;
            Ok(state
                .control_plane
                .delete_webhook_endpoint(&caller.0, id, idempotency)
                .await?)
        },
    )
    .await
}

/// An endpoint's deliveries, newest first: `pending`, `held` (the owner is suspended),
/// `succeeded`, `failed`, `abandoned` or `canceled`, with attempts and the last error.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(
        ("id" = String, Path, description = "whe_-prefixed or bare UUID"),
        ("limit" = Option<usize>, Query, description = "1-100, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = DeliveryList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:read", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such endpoint in the acting organization", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id, bad limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn list_deliveries(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksRead)?;
    let id = endpoint_id(&path)?;
    let page_request = Query::parse(&request, &["limit", "cursor"])?.page(DELIVERIES, 25, 100)?;
    let page = state
        .control_plane
        .list_webhook_deliveries(&caller.0, id, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        items: page.items.iter().map(DeliveryDto::from).collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(DELIVERIES, c)),
    }))
}

/// Send a `test.ping` to one endpoint, whatever it subscribes to. Answers the queued delivery.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "whe_-prefixed or bare UUID")),
    responses(
        (status = 202, body = DeliveryDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such endpoint in the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the endpoint is not enabled, or the acting organization is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn test_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = endpoint_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render_delivery(),
        async |idempotency| {
            body::none(&bytes)?;
            Ok(state
                .control_plane
                .test_webhook_endpoint(&caller.0, id, idempotency)
                .await?)
        },
    )
    .await
}

/// Send a delivery's event again, to the same endpoint, under a new event id; the body names the
/// original (`replayOf`). Answers the new delivery.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "whd_-prefixed or bare UUID")),
    responses(
        (status = 202, body = DeliveryDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs webhooks:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such delivery to an endpoint of the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the endpoint is not enabled, or the acting organization is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn replay_delivery(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let id = delivery_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render_delivery(),
        async |idempotency| {
            body::none(&bytes)?;
            Ok(state
                .control_plane
                .replay_webhook_delivery(&caller.0, id, idempotency)
                .await?)
        },
    )
    .await
}

fn endpoint_list(page: Page<WebhookEndpoint>) -> EndpointList {
    EndpointList {
        items: page.items.iter().map(EndpointDto::from).collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(ENDPOINTS, c)),
    }
}
