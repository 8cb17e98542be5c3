//! Everything a use case can refuse, typed. The HTTP adapter maps each variant to one status and
//! code; a Rust caller of the domain matches on it.

use crate::api_key::Scope;
use crate::organization::StatusKind;
use crate::ports::StoreError;
use crate::validation::FieldError;
use crate::{OrganizationId, Timestamp};

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
    #[error("{message}")]
    Conflict {
        message: String,
        organization_id: OrganizationId,
        status: StatusKind,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    pub fn validation(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }
}

/// Why the kill switch refused a request: the suspended organization and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillSwitch {
    pub organization_id: OrganizationId,
    pub suspended_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Organization,
    ApiKey,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Organization => "organization",
            Resource::ApiKey => "API key",
        })
    }
}
