//! Reservations (API.md §6.4): how the services that do the work spend credits.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::api_key::Scope;
use domain::credits::{Reservation, ReservationId};

use super::Caller;
use crate::dto::{ErrorEnvelope, ReservationDto, ReserveBody, SettleBody};
use crate::error::ApiError;
use crate::{body, idempotent, ApiState};

fn reservation_id(raw: &str) -> Result<ReservationId, ApiError> {
    ReservationId::parse(raw).map_err(|e| ApiError::invalid("id", &e.to_string()))
}

fn render(
    status: StatusCode,
) -> impl Fn(&Reservation) -> domain::idempotency::StoredResponse + Send + Sync + 'static {
    move |r: &Reservation| idempotent::render(status, &ReservationDto::from(r))
}

/// Hold credits of the acting organization for work about to run. Refused while the organization
/// is suspended (its own keys get 503 KILL_SWITCH at the gate; a parent acting inside it 409) or
/// archived, and when the available balance is too small.
#[utoipa::path(post, path = "/v1/credits/reservations", tag = "credits", request_body = ReserveBody,
    responses(
        (status = 201, body = ReservationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 402, description = "BILLING_EXHAUSTED: details.reason insufficient_credits", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs credits:write", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: the organization is suspended or archived", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: credits or description", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn reserve(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::CreditsWrite)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render(StatusCode::CREATED),
        async |idempotency| {
            let input: ReserveBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .reserve_credits(&caller.0, input.into(), idempotency)
                .await?)
        },
    )
    .await
}

/// One reservation of the acting organization. Needs `credits:read` or `credits:write` (`*`
/// covers both): the service that reserves and settles may read what it holds.
#[utoipa::path(get, path = "/v1/credits/reservations/{id}", tag = "credits",
    params(("id" = String, Path, description = "rsv_-prefixed or bare UUID")),
    responses(
        (status = 200, body = ReservationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs credits:read or credits:write (details.requiredScope names credits:read)", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such reservation in the acting organization", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn get_reservation(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_either(Scope::CreditsRead, Scope::CreditsWrite)?;
    let id = reservation_id(&path)?;
    let reservation = state.control_plane.get_reservation(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(ReservationDto::from(&reservation)))
}

/// Spend part or all of a held reservation; the rest is released. Settling again with the same
/// amount (or a released or expired reservation) returns it as it is; another amount is 409.
#[utoipa::path(post, path = "/v1/credits/reservations/{id}/settle", tag = "credits", request_body = SettleBody,
    params(("id" = String, Path, description = "rsv_-prefixed or bare UUID")),
    responses(
        (status = 200, body = ReservationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs credits:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such reservation in the acting organization", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT: already settled with another amount", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id, or credits outside 0..reserved", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn settle(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::CreditsWrite)?;
    let id = reservation_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render(StatusCode::OK),
        async |_| {
            let input: SettleBody = body::json(&bytes)?;
            Ok(state
                .control_plane
                .settle_reservation(&caller.0, id, input.credits)
                .await?)
        },
    )
    .await
}

/// Release a held reservation in full; a finished one is returned as it is.
#[utoipa::path(post, path = "/v1/credits/reservations/{id}/release", tag = "credits",
    params(("id" = String, Path, description = "rsv_-prefixed or bare UUID")),
    responses(
        (status = 200, body = ReservationDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs credits:write", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such reservation in the acting organization", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: malformed id", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn release(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::CreditsWrite)?;
    let id = reservation_id(&path)?;
    let bytes = body::read(&request, payload).await?;
    idempotent::run(
        &state,
        &caller,
        &request,
        &bytes,
        render(StatusCode::OK),
        async |_| {
            body::none(&bytes)?;
            Ok(state
                .control_plane
                .release_reservation(&caller.0, id)
                .await?)
        },
    )
    .await
}
