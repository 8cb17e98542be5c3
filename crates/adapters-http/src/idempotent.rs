//! `Idempotency-Key` on mutating routes (API.md §1.6): claim the key before running, replay a
//! finished request verbatim (`Idempotent-Replayed: true`), refuse a key reused for another
//! request (`409 IDEMPOTENCY_CONFLICT`) or one still running (`409 CONFLICT`), record 4xx answers,
//! and give the key back after a 5xx so the retry runs for real. The use cases that change state
//! write the answer in the same atomic change as the effect (see `domain::idempotency`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use std::sync::Arc;

use domain::idempotency::{
    Claim, ClaimOutcome, Fingerprint, Idempotency, IdempotencyKey, IdempotencyScope, Render,
    StoredResponse,
};
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
use crate::routes::Caller;
use crate::{request_id, ApiState};

/// What the caller's outcome is answered with: status and body, as stored.
pub fn render<D: Serialize>(status: StatusCode, dto: &D) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        body: serde_json::to_vec(dto).unwrap_or_default(),
    }
}

/// Runs `action` under the request's `Idempotency-Key`, if it has one, and answers with `render`
/// of its outcome. `action` gets what a use case needs to record the answer with its effect.
pub async fn run<T: 'static>(
    state: &ApiState,
    caller: &Caller,
    request: &HttpRequest,
    body: &[u8],
    render: impl Fn(&T) -> StoredResponse + Send + Sync + 'static,
    action: impl AsyncFnOnce(Option<Idempotency<T>>) -> Result<T, ApiError>,
) -> Result<HttpResponse, ApiError> {
    run_replaying_as(
        state,
        caller,
        request,
        body,
        render,
        |stored| stored.to_vec(),
        action,
    )
    .await
}

/// [`run`], where a replay answers `replayed(stored body)` instead of the stored body verbatim
/// (an allocation's replay says `"replayed": true`, API.md §6.2).
pub async fn run_replaying_as<T: 'static>(
    state: &ApiState,
    caller: &Caller,
    request: &HttpRequest,
    body: &[u8],
    render: impl Fn(&T) -> StoredResponse + Send + Sync + 'static,
    replayed: impl FnOnce(&[u8]) -> Vec<u8>,
    action: impl AsyncFnOnce(Option<Idempotency<T>>) -> Result<T, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let render: Render<T> = Arc::new(render);
    let Some(claim) = claim(state, caller, request, body).await? else {
        let outcome = action(None).await?;
        return Ok(respond(&render(&outcome), false));
    };
    let claim = match claim {
        Claimed::Run(claim) => claim,
        Claimed::Replay(response) => {
            let mut body = replayed(&response.body);
            if response.status >= 400 {
                with_current_request_id(&mut body);
            }
            let replay = StoredResponse {
                status: response.status,
                body,
            };
            return Ok(respond(&replay, true));
        }
    };
    let idempotency = Idempotency {
        claim: claim.clone(),
        render: render.clone(),
    };
    match action(Some(idempotency)).await {
        Ok(outcome) => {
            let response = render(&outcome);
            // Already recorded with the effect where there was one; this records the rest
            // (no-ops, effects that are idempotent by nature) and is a no-op otherwise.
            if let Err(error) = state
                .control_plane
                .complete_idempotency_key(claim, response.clone())
                .await
            {
                tracing::warn!(%error, "could not record an idempotent response");
            }
            Ok(respond(&response, false))
        }
        Err(refused) if refused.is_client_error() => {
            let response = StoredResponse {
                status: refused.status_code().as_u16(),
                body: refused.envelope(),
            };
            if let Err(error) = state
                .control_plane
                .complete_idempotency_key(claim, response)
                .await
            {
                tracing::warn!(%error, "could not record an idempotent refusal");
            }
            Err(refused)
        }
        Err(failed) => {
            if let Err(error) = state.control_plane.release_idempotency_key(&claim).await {
                tracing::warn!(%error, "could not release an idempotency key after a failure");
            }
            Err(failed)
        }
    }
}

enum Claimed {
    Run(Claim),
    Replay(StoredResponse),
}

/// The request's claim on its key; `None` without the header.
async fn claim(
    state: &ApiState,
    caller: &Caller,
    request: &HttpRequest,
    body: &[u8],
) -> Result<Option<Claimed>, ApiError> {
    let Some(header) = request.headers().get(IdempotencyKey::HEADER) else {
        return Ok(None);
    };
    let key = header
        .to_str()
        .map_err(|_| ApiError::invalid(IdempotencyKey::HEADER, "must be a UUID"))
        .and_then(|raw| IdempotencyKey::parse(raw).map_err(|e| ApiError::validation(vec![e])))?;
    let scope = IdempotencyScope {
        api_key: caller.0.key.id,
        method: request.method().to_string(),
        route: request
            .match_pattern()
            .unwrap_or_else(|| request.path().to_owned()),
        key,
    };
    let fingerprint = Fingerprint::of(request.path(), body);
    match state.control_plane.claim_idempotency_key(scope, fingerprint).await? {
        ClaimOutcome::Claimed(claim) => Ok(Some(Claimed::Run(claim))),
        ClaimOutcome::Replay(response) => Ok(Some(Claimed::Replay(response))),
        ClaimOutcome::InFlight => Err(ApiError::new(
            ErrorCode::Conflict,
            "A request with this Idempotency-Key is still running. Retry later.",
        )),
        ClaimOutcome::Mismatch => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "This Idempotency-Key was used for a different request. Use a new key for a new request.",
        )),
    }
}

fn respond(response: &StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/json");
    if replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    builder.body(response.body.clone())
}

/// A replayed refusal keeps its body, except that its `requestId` is this request's: an error
/// body's `requestId` always equals the response's `X-Request-Id` (API.md §1.2).
fn with_current_request_id(body: &mut [u8]) {
    const FIELD: &[u8] = b"\"requestId\":\"";
    let current = request_id::current();
    let Some(at) = body.windows(FIELD.len()).position(|w| w == FIELD) else {
        return;
    };
    let start = at + FIELD.len();
    // Request ids all have one length (`req_` and a 26-character ULID).
    if let Some(slot) = body.get_mut(start..start + current.len()) {
        if slot.starts_with(b"req_") {
            slot.copy_from_slice(current.as_bytes());
        }
    }
}
