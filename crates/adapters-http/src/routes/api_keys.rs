//! `/v1/organizations/:orgId/api-keys/**` (API.md §5.2): a parent mints and revokes its
//! children's keys.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::api_key::{ApiKey, Scope};
use domain::pagination::Page;
use domain::use_cases::{MintedKey, RotatedKey};

use super::{api_key_id, organization_id, Caller};
use crate::dto::{
    ApiKeyDto, ApiKeyList, CreateApiKeyBody, DeletedApiKeyDto, ErrorEnvelope, KilledApiKeyDto,
    MintedApiKeyDto, RotatedApiKeyDto,
};
use crate::error::ApiError;
use crate::query::Query;
use crate::{body, cursor, idempotent, ApiState};

const LIST: &str = "api_keys";

/// Mint a key for a child. The response is the only time the secret is shown.
#[utoipa::path(post, path = "/v1/organizations/{orgId}/api-keys", tag = "keys", request_body = CreateApiKeyBody,
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 201, body = MintedApiKeyDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin; or a requested scope is org:admin or not held by the caller", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the org is archived", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId, name, env, unknown or empty scopes", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn create_api_key(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    let now = state.control_plane.now();
    let render = move |minted: &MintedKey| {
        idempotent::render(StatusCode::CREATED, &MintedApiKeyDto::at(minted, now))
    };
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render,
        async |idempotency| {
            let input: CreateApiKeyBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .mint_api_key(&caller.0, id, input.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// A child's keys, in every status, newest first.
#[utoipa::path(get, path = "/v1/organizations/{orgId}/api-keys", tag = "keys",
    params(
        ("orgId" = String, Path, description = "org_-prefixed or bare UUID"),
        ("limit" = Option<usize>, Query, description = "1-100, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId, limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn list_api_keys(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let page_request = Query::parse(&request, &["limit", "cursor"])?.page(LIST, 25, 100)?;
    let page = state
        .control_plane
        .list_api_keys(&caller.0, id, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(key_list(&state, page)))
}

/// Revoke a child's key now: its next request is `401`. Revoking a revoked key returns it.
#[utoipa::path(delete, path = "/v1/organizations/{orgId}/api-keys/{keyId}", tag = "keys",
    params(
        ("orgId" = String, Path, description = "org_-prefixed or bare UUID"),
        ("keyId" = String, Path, description = "key_-prefixed or bare UUID")),
    responses(
        (status = 200, body = DeletedApiKeyDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org or direct child, or the key is not that child's", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId or keyId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn delete_api_key(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let (org, key) = path.into_inner();
    let (org, key) = (organization_id(&org)?, api_key_id(&key)?);
    let bytes = body::read(&request, payload).await?;
    let now = state.control_plane.now();
    let render = move |revoked: &ApiKey| {
        let dto = DeletedApiKeyDto {
            api_key: ApiKeyDto::at(revoked, now),
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
                .revoke_api_key(&caller.0, org, key, idempotency)
                .await?)
        },
    )
    .await
}

/// Rotate a child's key: a new key with the same name, scopes, env and tier; the old one keeps
/// working for a 24 h grace window (`graceUntil`, `supersededBy`), then is revoked.
#[utoipa::path(post, path = "/v1/organizations/{orgId}/api-keys/{keyId}/rotate", tag = "keys",
    params(
        ("orgId" = String, Path, description = "org_-prefixed or bare UUID"),
        ("keyId" = String, Path, description = "key_-prefixed or bare UUID")),
    responses(
        (status = 201, body = RotatedApiKeyDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org or direct child, or the key is not that child's", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the key is superseded or revoked, or the org is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId or keyId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn rotate_child_api_key(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let (org, key) = path.into_inner();
    let (org, key) = (organization_id(&org)?, api_key_id(&key)?);
    let bytes = body::read(&request, payload).await?;
    let now = state.control_plane.now();
    let render = move |rotated: &RotatedKey| {
        idempotent::render(StatusCode::CREATED, &RotatedApiKeyDto::at(rotated, now))
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
                .rotate_child_api_key(&caller.0, org, key, idempotency)
                .await?)
        },
    )
    .await
}

/// Keys of the acting organization (the caller's own, or the child named by
/// `X-Layers-Organization`), in every status, newest first.
#[utoipa::path(get, path = "/v1/api-keys", tag = "keys",
    params(
        ("limit" = Option<usize>, Query, description = "1-100, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs keys:read", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: bad limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn list_own_api_keys(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::KeysRead)?;
    let page_request = Query::parse(&request, &["limit", "cursor"])?.page(LIST, 25, 100)?;
    let page = state
        .control_plane
        .list_own_api_keys(&caller.0, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(key_list(&state, page)))
}

/// Kill a key of the same organization — the leaked-key button: from its next request on it gets
/// `503 KILL_SWITCH` with `details.scope: "key"`. Idempotent.
#[utoipa::path(post, path = "/v1/api-keys/{keyId}/kill", tag = "keys",
    params(("keyId" = String, Path, description = "key_-prefixed or bare UUID")),
    responses(
        (status = 200, body = KilledApiKeyDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs keys:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such key in the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the acting organization is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed keyId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn kill_api_key(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::KeysWrite)?;
    let key = api_key_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    let now = state.control_plane.now();
    let render = move |killed: &ApiKey| {
        let dto = KilledApiKeyDto {
            api_key: ApiKeyDto::at(killed, now),
            killed: true,
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
                .kill_api_key(&caller.0, key, idempotency)
                .await?)
        },
    )
    .await
}

/// Replace a key's secret in place: same id, new handle and secret; the old secret is `401` at
/// once.
#[utoipa::path(post, path = "/v1/api-keys/{keyId}/rotate", tag = "keys",
    params(("keyId" = String, Path, description = "key_-prefixed or bare UUID")),
    responses(
        (status = 200, body = MintedApiKeyDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs keys:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such key in the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the key is revoked, or the acting organization archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed keyId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn rotate_own_api_key(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::KeysWrite)?;
    let key = api_key_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    let now = state.control_plane.now();
    let render = move |minted: &MintedKey| {
        idempotent::render(StatusCode::OK, &MintedApiKeyDto::at(minted, now))
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
                .rotate_own_api_key(&caller.0, key, idempotency)
                .await?)
        },
    )
    .await
}

fn key_list(state: &ApiState, page: Page<ApiKey>) -> ApiKeyList {
    let now = state.control_plane.now();
    ApiKeyList {
        items: page
            .items
            .iter()
            .map(|key| ApiKeyDto::at(key, now))
            .collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(LIST, c)),
    }
}
