use std::fmt;
use std::str::FromStr;

use super::{BillingEmail, Metadata, OrganizationName};
use crate::{OrganizationId, Timestamp};

/// Where an organization is in its lifecycle (API.md §4.2). The instants live inside the states
/// they belong to, so a suspended organization always knows since when, an archived one always
/// knows when, and an active one has neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationStatus {
    Active,
    Suspended { since: Timestamp },
    Archived { at: Timestamp },
}

impl OrganizationStatus {
    pub fn kind(&self) -> StatusKind {
        match self {
            Self::Active => StatusKind::Active,
            Self::Suspended { .. } => StatusKind::Suspended,
            Self::Archived { .. } => StatusKind::Archived,
        }
    }

    pub fn archived_at(&self) -> Option<Timestamp> {
        match self {
            Self::Archived { at } => Some(*at),
            _ => None,
        }
    }

    pub fn suspended_since(&self) -> Option<Timestamp> {
        match self {
            Self::Suspended { since } => Some(*since),
            _ => None,
        }
    }
}

/// The status without its instant: what the API shows and filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    Active,
    Suspended,
    Archived,
}

impl StatusKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Archived => "archived",
        }
    }
}

impl fmt::Display for StatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StatusKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "archived" => Ok(Self::Archived),
            _ => Err(()),
        }
    }
}

/// Optimistic-concurrency token: every stored change bumps it, and a store only applies a change
/// whose expected revision is still current. Two writers can never both win from the same read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(u64);

impl Revision {
    pub const INITIAL: Revision = Revision(1);

    pub fn new(value: u64) -> Self {
        Self(value)
    }

    pub fn value(&self) -> u64 {
        self.0
    }

    pub fn next(&self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrganizationId,
    /// `None` for a top-level organization (made by the operator); children are one level deep.
    pub parent_id: Option<OrganizationId>,
    pub name: OrganizationName,
    pub status: OrganizationStatus,
    pub metadata: Metadata,
    pub billing_email: Option<BillingEmail>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revision: Revision,
}

impl Organization {
    /// A new top-level organization: active, without metadata or billing email, first revision.
    pub fn new_top_level(id: OrganizationId, name: OrganizationName, now: Timestamp) -> Self {
        Organization {
            id,
            parent_id: None,
            name,
            status: OrganizationStatus::Active,
            metadata: Metadata::default(),
            billing_email: None,
            created_at: now,
            updated_at: now,
            revision: Revision::INITIAL,
        }
    }

    pub fn is_top_level(&self) -> bool {
        self.parent_id.is_none()
    }

    pub fn is_child_of(&self, parent: OrganizationId) -> bool {
        self.parent_id == Some(parent)
    }
}
