//! Who may do what (API.md §2.2, §2.3, §3): the authenticated principal, the kill switch, scope
//! checks and the direct-child rule. Every use case asks these functions; so does the HTTP layer
//! before it parses a request, so the contract's order of checks holds.

use crate::api_key::{ApiKey, KeyState, Scope};
use crate::error::{ConflictSubject, KillScope, KillSwitch, Resource};
use crate::organization::{Organization, StatusKind};
use crate::{DomainError, Timestamp};

/// Who is calling: an active key, the organization it belongs to, and — when a parent acts
/// inside one of its children (`X-Layers-Organization`, API.md §2.3) — that child.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: ApiKey,
    pub organization: Organization,
    pub acting: Option<Organization>,
    /// The request it came with (`req_…`), for the audit log.
    pub request_id: Option<String>,
}

impl Principal {
    /// The organization the request acts on: the key's own, or the child it acts inside.
    pub fn acting_organization(&self) -> &Organization {
        self.acting.as_ref().unwrap_or(&self.organization)
    }
}

/// Spending credits or starting work (API.md §2.3, §3): refused inside a suspended organization
/// (`409`, status `suspended`) as inside an archived one.
pub fn ensure_may_spend(org: &Organization) -> Result<(), DomainError> {
    match org.status.kind() {
        StatusKind::Suspended => Err(DomainError::Conflict {
            message:
                "the organization is suspended: nothing of it spends or runs until it is resumed"
                    .to_owned(),
            subject: ConflictSubject::Organization {
                id: org.id,
                status: StatusKind::Suspended,
            },
        }),
        _ => ensure_writable(org),
    }
}

/// Writes inside an archived organization are refused (API.md §2.3): it may only be read.
pub fn ensure_writable(org: &Organization) -> Result<(), DomainError> {
    match org.status.kind() {
        StatusKind::Archived => Err(DomainError::Conflict {
            message: "the organization is archived: it can be read, not changed".to_owned(),
            subject: ConflictSubject::Organization {
                id: org.id,
                status: StatusKind::Archived,
            },
        }),
        _ => Ok(()),
    }
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
/// organization's parent, is suspended — and of a key killed on its own (API.md §5.4).
pub fn kill_switch(credentials: &Credentials, now: Timestamp) -> Result<(), KillSwitch> {
    if let KeyState::Killed { at } = credentials.key.state_at(now) {
        return Err(KillSwitch {
            scope: KillScope::Key(credentials.key.id),
            api_key_id: credentials.key.id,
            rate_limit_tier: credentials.key.rate_limit_tier,
            organization_id: credentials.key.organization_id,
            suspended_at: at,
        });
    }
    [Some(&credentials.organization), credentials.parent.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|org| {
            org.status.suspended_since().map(|since| KillSwitch {
                scope: KillScope::Organization,
                api_key_id: credentials.key.id,
                rate_limit_tier: credentials.key.rate_limit_tier,
                organization_id: org.id,
                suspended_at: since,
            })
        })
        .map_or(Ok(()), Err)
}

/// Children are one level deep (API.md §2.3, §4.3): a child's key may not create organizations,
/// `422` — checked before the scope, which a child's key can never hold anyway.
pub fn may_create_children(principal: &Principal) -> Result<(), DomainError> {
    if principal.organization.is_top_level() {
        Ok(())
    } else {
        Err(DomainError::validation(crate::validation::FieldError::new(
            "organization",
            "a child organization cannot create organizations: children are one level deep",
        )))
    }
}

pub fn require_scope(principal: &Principal, required: Scope) -> Result<(), DomainError> {
    if principal.key.scopes.grants(required) {
        Ok(())
    } else {
        Err(DomainError::ForbiddenScope { required })
    }
}

/// For a route either of two scopes opens (reading a reservation takes `credits:read` or
/// `credits:write`, API.md §6.4). A key with neither is refused naming `named`, the lesser one:
/// the least a key needs to get in.
pub fn require_either_scope(
    principal: &Principal,
    named: Scope,
    also: Scope,
) -> Result<(), DomainError> {
    let scopes = &principal.key.scopes;
    if scopes.grants(named) || scopes.grants(also) {
        Ok(())
    } else {
        Err(DomainError::ForbiddenScope { required: named })
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
