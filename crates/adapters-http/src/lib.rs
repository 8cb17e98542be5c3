//! The HTTP API of the control plane (API.md), on actix-web: routes, request parsing, DTOs and
//! their wire formats, the error envelope, and the OpenAPI document.
//!
//! A request flows: [`gate`] (request id, authentication, kill switch, rate limit, access log) →
//! the route's handler (scope, then input validation, then the use case) → a DTO or an
//! [`ApiError`].

mod body;
mod cursor;
mod dto;
mod error;
mod gate;
mod idempotent;
mod metrics;
mod openapi;
mod presenter;
mod query;
mod rate_limit;
mod request_id;
mod routes;
mod wire_time;

use std::sync::Arc;

use actix_web::web;
use domain::use_cases::ControlPlane;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use presenter::WirePresenter;
pub use rate_limit::{endpoint_class, per_minute, Decision, EndpointClass, RateLimiter};

/// Whether the store can serve requests: reachable and migrated (`GET /readyz`).
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    async fn is_ready(&self) -> bool;
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub control_plane: ControlPlane,
    pub readiness: Arc<dyn Readiness>,
    /// Rate limits per key and endpoint class (API.md §1.7), shared by every worker of the
    /// process.
    pub rate_limiter: Arc<RateLimiter>,
}

/// Mounts the whole API on an actix `App`: `App::new().configure(adapters_http::configure(state))`.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| routes::configure(config, state)
}
