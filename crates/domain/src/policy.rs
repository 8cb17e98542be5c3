//! Who may do what (API.md §2.2, §2.3, §3): the authenticated principal, the kill switch, scope
//! checks and the direct-child rule. Every use case asks these functions; so does the HTTP layer
//! before it parses a request, so the contract's order of checks holds.

use crate::api_key::{ApiKey, Scope};
use crate::error::{KillSwitch, Resource};
use crate::organization::Organization;
use crate::DomainError;

/// Who is calling: an active key and the organization it belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: ApiKey,
    pub organization: Organization,
}

/// A key with everything needed to admit it: its organization and, for a child, the parent
/// (a suspended top-level organization cuts off its children too — API.md §9).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub key: ApiKey,
    pub organization: Organization,
    pub parent: Option<Organization>,
}

/// The kill switch (API.md §3): refuses every request of a key whose organization, or whose
/// organization's parent, is suspended.
pub fn kill_switch(credentials: &Credentials) -> Result<(), KillSwitch> {
    [Some(&credentials.organization), credentials.parent.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|org| {
            org.status.suspended_since().map(|since| KillSwitch {
                organization_id: org.id,
                suspended_at: since,
            })
        })
        .map_or(Ok(()), Err)
}

pub fn require_scope(principal: &Principal, required: Scope) -> Result<(), DomainError> {
    if principal.key.scopes.grants(required) {
        Ok(())
    } else {
        Err(DomainError::ForbiddenScope { required })
    }
}

/// The organization, if it is a direct child of the principal's; otherwise `404` — never `403`,
/// so the existence of a sibling, a grandchild or another partner's child is not revealed.
pub fn direct_child(
    principal: &Principal,
    found: Option<Organization>,
) -> Result<Organization, DomainError> {
    found
        .filter(|org| org.is_child_of(principal.organization.id))
        .ok_or(DomainError::NotFound(Resource::Organization))
}
