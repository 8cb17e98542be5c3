//! Credits (API.md §6): wallets, allocation to a child, the ledger.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::api_key::Scope;
use domain::credits::{CreditConfig, LedgerEvent, LedgerEventType, LedgerFilter, Wallet};
use domain::idempotency::IdempotencyKey;
use domain::pagination::Page;
use domain::use_cases::AllocationReport;

use super::{organization_id, Caller};
use crate::dto::{
    AllocateBody, AllocationDto, CreditConfigView, CreditsDto, ErrorEnvelope, LedgerEventDto,
    LedgerList, PatchCreditConfigBody,
};
use crate::error::{ApiError, ErrorCode};
use crate::query::Query;
use crate::{body, cursor, idempotent, ApiState};

const LEDGER: &str = "ledger";

/// The acting organization's wallet.
#[utoipa::path(get, path = "/v1/credits", tag = "credits",
    responses(
        (status = 200, body = CreditsDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs credits:read", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn own_credits(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::CreditsRead)?;
    let view = state.control_plane.own_credits(&caller.0).await?;
    Ok(HttpResponse::Ok().json(CreditsDto::from(&view)))
}

/// A direct child's wallet.
#[utoipa::path(get, path = "/v1/organizations/{orgId}/credits", tag = "credits",
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = CreditsDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn child_credits(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let view = state.control_plane.child_credits(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(CreditsDto::from(&view)))
}

/// Move credits from your available balance to a direct child. Requires `Idempotency-Key`; a
/// replay answers the same body with `"replayed": true` and moves nothing.
#[utoipa::path(post, path = "/v1/organizations/{orgId}/credits/allocate", tag = "credits", request_body = AllocateBody,
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 201, body = AllocationDto),
        (status = 400, description = "IDEMPOTENCY_REQUIRED: the Idempotency-Key header is missing", body = ErrorEnvelope),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 402, description = "BILLING_EXHAUSTED: your available balance is too small; nothing moved", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the child is archived; or IDEMPOTENCY_CONFLICT", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId, credits, description or metadata", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn allocate(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    if !request.headers().contains_key(IdempotencyKey::HEADER) {
        return Err(ApiError::new(
            ErrorCode::IdempotencyRequired,
            "Allocating credits needs an Idempotency-Key header (a UUID), so a retry never moves credits twice.",
        ));
    }
    let bytes = body::read(&request, payload).await?;
    let render = move |report: &AllocationReport| {
        idempotent::render(StatusCode::CREATED, &AllocationDto::from(report))
    };
    idempotent::run_replaying_as(
        &state,
        &caller,
        &request,
        &bytes,
        render,
        mark_replayed,
        async |idempotency| {
            let input: AllocateBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .allocate_credits(&caller.0, id, input.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// A direct child's spend controls.
#[utoipa::path(get, path = "/v1/organizations/{orgId}/credit-config", tag = "credits",
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = CreditConfigView),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn credit_config(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let (config, wallet) = state.control_plane.credit_config(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(CreditConfigView::of(&config, &wallet)))
}

/// Change a direct child's spend controls: a number sets a value, `null` turns it off, an
/// omitted field stays. `refillThreshold` and `refillAmount` go together.
#[utoipa::path(patch, path = "/v1/organizations/{orgId}/credit-config", tag = "credits", request_body = PatchCreditConfigBody,
    params(("orgId" = String, Path, description = "org_-prefixed or bare UUID")),
    responses(
        (status = 200, body = CreditConfigView),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the org is archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: a value, or refillThreshold without refillAmount", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn update_credit_config(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    let render = |(config, wallet): &(CreditConfig, Wallet)| {
        idempotent::render(StatusCode::OK, &CreditConfigView::of(config, wallet))
    };
    idempotent::run(&state, &caller, &request, &bytes, render, async |_| {
        let patch: PatchCreditConfigBody = body::json(&bytes)?;
        Ok(state
            .control_plane
            .update_credit_config(&caller.0, id, patch.into())
            .await?)
    })
    .await
}

/// The acting organization's ledger, newest first.
#[utoipa::path(get, path = "/v1/credits/events", tag = "credits",
    params(
        ("eventType" = Option<String>, Query, description = "grant, allocation, usage, reclaim or adjustment"),
        ("since" = Option<String>, Query, description = "inclusive, e.g. 2026-06-01T00:00:00.000Z"),
        ("until" = Option<String>, Query, description = "inclusive, Z form"),
        ("limit" = Option<usize>, Query, description = "1-100, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = LedgerList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs credits:read", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: a bad filter, limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn own_ledger(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::CreditsRead)?;
    let (filter, page_request) = ledger_query(&request)?;
    let page = state
        .control_plane
        .own_ledger(&caller.0, filter, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(ledger_list(page)))
}

/// A direct child's ledger, newest first.
#[utoipa::path(get, path = "/v1/organizations/{orgId}/credits/events", tag = "credits",
    params(
        ("orgId" = String, Path, description = "org_-prefixed or bare UUID"),
        ("eventType" = Option<String>, Query, description = "grant, allocation, usage, reclaim or adjustment"),
        ("since" = Option<String>, Query, description = "inclusive, Z form"),
        ("until" = Option<String>, Query, description = "inclusive, Z form"),
        ("limit" = Option<usize>, Query, description = "1-100, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = LedgerList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs org:admin", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such org, or not a direct child", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed orgId, a bad filter, limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn child_ledger(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrgAdmin)?;
    let id = organization_id(&path)?;
    let (filter, page_request) = ledger_query(&request)?;
    let page = state
        .control_plane
        .child_ledger(&caller.0, id, filter, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(ledger_list(page)))
}

fn ledger_query(
    request: &HttpRequest,
) -> Result<(LedgerFilter, domain::pagination::PageRequest), ApiError> {
    let query = Query::parse(request, &["eventType", "since", "until", "limit", "cursor"])?;
    let event_type = query
        .get("eventType")
        .map(|raw| {
            raw.parse::<LedgerEventType>().map_err(|()| {
                ApiError::invalid(
                    "eventType",
                    "must be grant, allocation, usage, reclaim or adjustment",
                )
            })
        })
        .transpose()?;
    let (since, until) = query.period()?;
    let filter = LedgerFilter {
        event_type,
        since,
        until,
    };
    Ok((filter, query.page(LEDGER, 25, 100)?))
}

fn ledger_list(page: Page<LedgerEvent>) -> LedgerList {
    LedgerList {
        items: page.items.iter().map(LedgerEventDto::from).collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(LEDGER, c)),
    }
}

/// A replayed allocation answers the same body with `"replayed": true` (API.md §6.2). The flag is
/// the body's last field, and `"replayed":false` cannot occur inside a JSON string (its quotes
/// would be escaped), so the last occurrence is the flag.
fn mark_replayed(stored: &[u8]) -> Vec<u8> {
    const FRESH: &[u8] = b"\"replayed\":false";
    const REPLAYED: &[u8] = b"\"replayed\":true";
    match stored.windows(FRESH.len()).rposition(|w| w == FRESH) {
        Some(at) => [&stored[..at], REPLAYED, &stored[at + FRESH.len()..]].concat(),
        None => stored.to_vec(),
    }
}
