//! The gate every request passes first: it mints the request id, authenticates the key, applies
//! the kill switch (API.md §3) — on every route, unknown ones included — then the key's rate
//! limit (API.md §1.7, [`rate_limit`]), and writes one log line per request. Authentication reads
//! the store on every request (no cache), so a suspension committed through any server process is
//! enforced by all of them from the next request on.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use domain::policy::Principal;
use domain::use_cases::{RequestContext, ACTING_HEADER};
use domain::DomainError;

use crate::error::ApiError;
use crate::{rate_limit, request_id, ApiState};

/// Routes that answer without a key: liveness, readiness, metrics and the API description.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

pub async fn gate(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id::mint();
    request_id::scope(id.clone(), admit_and_serve(request, next, id)).await
}

async fn admit_and_serve(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    id: String,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "(no route)".to_owned());
    let mut key_id = None;
    let mut rate_verdict = None;

    let admitted = if PUBLIC_PATHS.contains(&request.path()) {
        Ok(())
    } else {
        match admit(&request, &id).await {
            Err(refused) => Err(refused),
            Ok(principal) => {
                key_id = Some(principal.key.id.to_string());
                // Right after the kill switch: 401 → 503 → 429 → 403 → … (docs/rate-limits.md).
                let verdict = rate_limit::check(&request, &principal);
                rate_verdict = Some(verdict);
                match verdict.enforce() {
                    Err(refused) => Err(refused),
                    // A refused `X-Layers-Organization` is answered by the route's handler (through
                    // `Caller`), not here: a wrong method on a known route is `405` and an unknown
                    // route `404` whatever the header says (API.md §1.1).
                    Ok(()) => {
                        match act(&request, principal).await {
                            Ok(principal) => {
                                request.extensions_mut().insert(principal);
                            }
                            Err(refused) => {
                                request.extensions_mut().insert(ActingRefused(refused));
                            }
                        }
                        Ok(())
                    }
                }
            }
        }
    };
    // Every response carries the rate-limit headers (API.md §1.7): a key the kill switch refused
    // shows its budget uncounted; a request with no key shows that nothing limits it.
    let refused_key = request
        .extensions()
        .get::<RefusedKey>()
        .map(|refused| (refused.key, refused.tier));
    let rate_verdict = match (rate_verdict, refused_key) {
        (Some(verdict), _) => verdict,
        (None, Some((key, tier))) => {
            key_id = Some(key.to_string());
            rate_limit::show(&request, key, tier)
        }
        (None, None) => rate_limit::unmetered(request.method(), request.match_pattern().as_deref()),
    };
    let mut response = match admitted {
        Err(refused) => request.into_response(refused.error_response()),
        // Inner services answer errors as responses; an `Err` here can only come from a
        // middleware inside this one, and there is none.
        Ok(()) => next.call(request).await?.map_into_boxed_body(),
    };
    // The contract's media type names its charset (API.md §1.1); actix writes the bare one.
    let headers = response.headers_mut();
    if headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == "application/json")
    {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    rate_verdict.write_headers(response.headers_mut());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    crate::metrics::record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        key_id = key_id.as_deref().unwrap_or("-"),
        "request"
    );
    Ok(response)
}

/// Authentication, then the kill switch. The request's id, method and route go with it, so the
/// principal carries the request id (audit events name it) and a refusal by the kill switch is
/// audited with what was asked.
async fn admit(request: &ServiceRequest, request_id: &str) -> Result<Principal, ApiError> {
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::platform("ApiState is not registered"))?;
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(DomainError::Unauthenticated)?;
    let context = RequestContext {
        request_id: Some(request_id.to_owned()),
        method: request.method().to_string(),
        route: request
            .match_pattern()
            .unwrap_or_else(|| request.path().to_owned()),
    };
    match state.control_plane.authenticate(bearer, &context).await {
        Ok(principal) => Ok(principal),
        Err(DomainError::KillSwitch(kill)) => {
            // Refused, but identified: the request log names the key.
            request.extensions_mut().insert(RefusedKey {
                key: kill.api_key_id,
                tier: kill.rate_limit_tier,
            });
            Err(DomainError::KillSwitch(kill).into())
        }
        Err(other) => Err(other.into()),
    }
}

/// The key the kill switch refused: the request log names it, the answer shows its budget.
struct RefusedKey {
    key: domain::ApiKeyId,
    tier: domain::api_key::RateLimitTier,
}

/// Why the caller may not act inside the organization its `X-Layers-Organization` names; the
/// handler's `Caller` answers it.
pub(crate) struct ActingRefused(pub(crate) ApiError);

/// Acting inside a child (`X-Layers-Organization`, API.md §2.3): 403, 422 or 404 when the
/// caller may not. The control plane's own routes ignore the header.
async fn act(request: &ServiceRequest, principal: Principal) -> Result<Principal, ApiError> {
    let header = match request.headers().get(ACTING_HEADER) {
        Some(value) if !request.path().starts_with("/v1/organizations") => value,
        _ => return Ok(principal),
    };
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::platform("ApiState is not registered"))?;
    let header = header.to_str().unwrap_or("");
    Ok(state.control_plane.act_inside(principal, header).await?)
}
