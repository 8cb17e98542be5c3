//! Everything a use case can refuse, typed. The HTTP adapter maps each variant to one status and
//! code; a Rust caller of the domain matches on it.

use crate::api_key::Scope;
use crate::credits::ReservationId;
use crate::organization::StatusKind;
use crate::ports::StoreError;
use crate::validation::FieldError;
use crate::{ApiKeyId, OrganizationId, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Missing, malformed, unknown, wrong or revoked key: one answer for all, so nothing leaks.
    #[error("the API key is missing or invalid")]
    Unauthenticated,
    #[error("the organization {} is suspended", .0.organization_id)]
    KillSwitch(KillSwitch),
    #[error("this API key lacks the scope {required}")]
    ForbiddenScope { required: Scope },
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(Resource),
    /// The state of what the request is about forbids it (an archived organization, a revoked
    /// key…). Retrying the same request will not help.
    #[error("{message}")]
    Conflict {
        message: String,
        subject: ConflictSubject,
    },
    /// The paying wallet's available balance is too small (`402 BILLING_EXHAUSTED`).
    #[error("not enough credits: {available} available, {requested} requested")]
    InsufficientCredits { available: u64, requested: u64 },
    /// The organization's monthly cap would be passed (`402 BILLING_EXHAUSTED`).
    #[error(
        "monthly cap of {cap} credits reached: {committed} spent or held, {requested} requested"
    )]
    MonthlyCapReached {
        cap: u64,
        committed: u64,
        requested: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    pub fn validation(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }
}

/// What a [`DomainError::Conflict`] is about, in the state that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictSubject {
    Organization {
        id: OrganizationId,
        status: StatusKind,
    },
    ApiKey {
        id: ApiKeyId,
        status: &'static str,
    },
    Reservation {
        id: ReservationId,
        status: &'static str,
    },
    WebhookEndpoint {
        id: crate::webhooks::EndpointId,
        status: &'static str,
    },
}

/// Why the kill switch refused a request (API.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillSwitch {
    pub scope: KillScope,
    /// The key that was refused (for the request log; never a secret).
    pub api_key_id: ApiKeyId,
    /// That key's tier: the refusal is not counted against its budget, but its answer still
    /// shows the budget (API.md §1.7, "every response").
    pub rate_limit_tier: crate::api_key::RateLimitTier,
    /// The organization the key belongs to, or the suspended organization.
    pub organization_id: OrganizationId,
    /// When the organization was suspended, or the key killed.
    pub suspended_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillScope {
    /// The organization (or its parent) is suspended.
    Organization,
    /// This key was killed on its own (API.md §5.4).
    Key(ApiKeyId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Organization,
    ApiKey,
    Reservation,
    WebhookEndpoint,
    WebhookDelivery,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Organization => "organization",
            Resource::ApiKey => "API key",
            Resource::Reservation => "reservation",
            Resource::WebhookEndpoint => "webhook endpoint",
            Resource::WebhookDelivery => "webhook delivery",
        })
    }
}
