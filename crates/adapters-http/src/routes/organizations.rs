//! `/v1/organizations/**` (API.md §4): the control plane over the caller's direct children.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::api_key::Scope;
use domain::idempotency::StoredResponse;
use domain::organization::{Organization, StatusKind};
use domain::policy;
use domain::use_cases::ArchiveReport;

use super::{organization_id, Caller};
use crate::dto::{
    ArchivedOrganizationDto, CreateOrganizationBody, ErrorEnvelope, OrganizationDto,
    OrganizationList, OrganizationWithSummaryDto, PatchOrganizationBody, SuspendBody,
};
use crate::error::ApiError;
use crate::query::Query;
use crate::{body, cursor, idempotent, ApiState};

const LIST: &str = "organizations";

/// Create a child organization: `active`, with an empty wallet.
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations", request_body = CreateOrganizationBody,
    responses(
        (status = 201, body = OrganizationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: a field is invalid, or the caller is itself a child", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    policy::may_create_children(&caller.0)?;
    caller.require(Scope::OrgAdmin)?;
    let bytes = body::read(&request, payload).await?;
    let render = move |org: &Organization| {
        idempotent::render(StatusCode::CREATED, &OrganizationDto::from(org))
    };
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render,
        async |idempotency| {
            let input: CreateOrganizationBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .create_organization(&caller.0, input.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// List the caller's direct children, newest first.
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations",
    params(
        ("status" = Option<String>, Query, description = "active, suspended or archived"),
        ("limit" = Option<usize>, Query, description = "1-200, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = OrganizationList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: bad status, limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let query = Query::parse(&request, &["status", "limit", "cursor"])?;
    let status = query
        .get("status")
        .map(|raw| {
            raw.parse::<StatusKind>()
                .map_err(|()| ApiError::invalid("status", "must be active, suspended or archived"))
        })
        .transpose()?;
    let page_request = query.page(LIST, 25, 200)?;
    let page = state
        .control_plane
        .list_organizations(&caller.0, status, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(OrganizationList {
        items: page.items.iter().map(OrganizationDto::from).collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(LIST, c)),
    }))
}

/// One child, with its summary.
#[utoipa::path(get, path = "/v1/organizations/{orgId}", tag = "organizations",
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = OrganizationWithSummaryDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let summary = state.control_plane.get_organization(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(OrganizationWithSummaryDto::from(&summary)))
}

/// Update a child: only the fields sent change; metadata merges key by key.
#[utoipa::path(patch, path = "/v1/organizations/{orgId}", tag = "organizations", request_body = PatchOrganizationBody,
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = OrganizationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the org is archived", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId or an invalid or unknown field", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn update(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render_ok,
        async |idempotency| {
            let patch: PatchOrganizationBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .update_organization(&caller.0, id, patch.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// Suspend a child — the kill switch. From the answer on, the child's own keys get
/// `503 KILL_SWITCH` on every request. Idempotent: suspending a suspended org returns it unchanged.
#[utoipa::path(post, path = "/v1/organizations/{orgId}/suspend", tag = "organizations",
    request_body(content = SuspendBody, description = "Optional: no body at all, or this object"),
    params(("orgId" = String, Path, description = "The child org id (org_-prefixed or bare UUID)")),
    responses(
        (status = 200, body = OrganizationDto),
        (status = 401, description = "UNAUTHENTICATED: missing or invalid key", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: key lacks org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or it isn't a direct child of your org", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the org is archived, a terminal state", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: the orgId is not a valid organization id, or the reason is too long", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn suspend(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render_ok,
        async |idempotency| {
            let input: Option<SuspendBody> = body::optional_json(&bytes)?;
            let reason = input.and_then(|b| b.reason);
            Ok(state
                .control_plane
                .suspend_organization(&caller.0, id, reason, idempotency)
                .await?)
        },
    )
    .await
}

/// Resume a suspended child: its keys work again from the answer on. Idempotent.
#[utoipa::path(post, path = "/v1/organizations/{orgId}/resume", tag = "organizations",
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = OrganizationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the org is archived, a terminal state", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn resume(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render_ok,
        async |idempotency| {
            body::none(&bytes)?;
            Ok(state
                .control_plane
                .resume_organization(&caller.0, id, idempotency)
                .await?)
        },
    )
    .await
}

/// Archive (offboard) a child for good: in one atomic change it is archived and every active key
/// of it revoked. Archiving again returns the same shape with zeros and the original instant.
#[utoipa::path(delete, path = "/v1/organizations/{orgId}", tag = "organizations",
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = ArchivedOrganizationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn archive(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    let render = move |report: &ArchiveReport| {
        idempotent::render(StatusCode::OK, &ArchivedOrganizationDto::from(report))
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
                .archive_organization(&caller.0, id, idempotency)
                .await?)
        },
    )
    .await
}

/// The organization object, `200`.
fn render_ok(org: &Organization) -> StoredResponse {
    idempotent::render(StatusCode::OK, &OrganizationDto::from(org))
}
