use std::collections::BTreeMap;

use super::recording::By;
use super::{ControlPlane, MAX_ATTEMPTS};
use crate::api_key::Scope;
use crate::audit::{AuditData, AuditEventType};
use crate::credits::TransferId;
use crate::error::ConflictSubject;
use crate::idempotency::Idempotency;
use crate::organization::lifecycle::{self, LifecycleAction, Transition};
use crate::organization::{
    BillingEmail, Metadata, MetadataPatch, Organization, OrganizationName, OrganizationStatus,
    Revision, StatusKind,
};
use crate::pagination::{Page, PageCursor, PageRequest};
use crate::policy::{self, Principal};
use crate::ports::{Archive, Reclaim, StoreError, Write};
use crate::trail::{EventSubject, Trail};
use crate::validation::FieldError;
use crate::webhooks::EventType;
use crate::{DomainError, OrganizationId, Timestamp};

/// A child organization to create (API.md §4.3), as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct NewOrganization {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub billing_email: Option<String>,
}

/// A change to an organization (API.md §4.6); `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the billing email.
    pub billing_email: Option<Option<String>>,
    pub metadata: Option<MetadataPatch>,
}

/// An organization with the figures of API.md §4.5.
#[derive(Debug, Clone)]
pub struct OrganizationSummary {
    pub organization: Organization,
    pub wallet: crate::credits::Wallet,
    pub credit_config: crate::credits::CreditConfig,
    pub active_api_keys: u64,
}

/// What archiving did (API.md §4.9). Archiving again reports zeros and the original instant.
#[derive(Debug, Clone)]
pub struct ArchiveReport {
    pub organization: Organization,
    pub reclaimed_credits: u64,
    pub revoked_api_keys: u64,
}

impl ArchiveReport {
    /// What archiving `organization` did, as the store reports it (nothing, when stale).
    fn of(organization: Organization, archived: &Archive) -> Self {
        let (revoked_api_keys, reclaimed_credits) = match *archived {
            Archive::Applied {
                revoked_keys,
                reclaimed_credits,
            } => (revoked_keys, reclaimed_credits),
            Archive::Stale => (0, 0),
        };
        Self {
            organization,
            reclaimed_credits,
            revoked_api_keys,
        }
    }
}

/// A suspension reason: at most this many characters (API.md §1.1).
pub const MAX_REASON_CHARS: usize = 500;

impl ControlPlane {
    /// Creates a direct child of the principal's organization.
    pub async fn create_organization(
        &self,
        principal: &Principal,
        input: NewOrganization,
        idempotency: Option<Idempotency<Organization>>,
    ) -> Result<Organization, DomainError> {
        policy::may_create_children(principal)?;
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let mut errors = Vec::new();
        let name = OrganizationName::parse(&input.name)
            .map_err(|e| errors.push(e))
            .ok();
        let metadata = Metadata::from_input(input.metadata)
            .map_err(|e| errors.extend(e))
            .ok();
        let billing_email = match input
            .billing_email
            .as_deref()
            .map(BillingEmail::parse)
            .transpose()
        {
            Ok(email) => email,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let (Some(name), Some(metadata)) = (name, metadata) else {
            return Err(DomainError::Validation(errors));
        };
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let now = self.ports.clock.now();
        let org = Organization {
            id: OrganizationId::from_uuid(self.new_uuid()),
            parent_id: Some(principal.organization.id),
            name,
            status: OrganizationStatus::Active,
            metadata,
            billing_email,
            created_at: now,
            updated_at: now,
            revision: Revision::INITIAL,
        };
        let trail = Trail::none()
            .with_audit(self.audit_event(
                Some(principal),
                org.id,
                AuditEventType::OrganizationCreated,
                &AuditData::Transition {
                    from: None,
                    to: StatusKind::Active,
                    reason: None,
                },
                now,
            ))
            .with_event(self.organization_event(EventType::OrganizationCreated, &org, None));
        let done = idempotency.map(|i| i.complete(&org, now));
        self.ports.organizations.insert(&org, &trail, done).await?;
        Ok(org)
    }

    /// Direct children of the principal's organization, newest first.
    pub async fn list_organizations(
        &self,
        principal: &Principal,
        status: Option<StatusKind>,
        page: PageRequest,
    ) -> Result<Page<Organization>, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let rows = self
            .ports
            .organizations
            .list_children(principal.organization.id, status, page.overfetch())
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, organization_cursor))
    }

    pub async fn get_organization(
        &self,
        principal: &Principal,
        id: OrganizationId,
    ) -> Result<OrganizationSummary, DomainError> {
        let organization = self.load_child(principal, id).await?;
        let now = self.ports.clock.now();
        let active_api_keys = self
            .ports
            .api_keys
            .count_active(organization.id, now)
            .await?;
        let wallet = self.ports.credits.wallet(organization.id).await?;
        let credit_config = self.ports.credits.credit_config(organization.id).await?;
        Ok(OrganizationSummary {
            organization,
            wallet,
            credit_config,
            active_api_keys,
        })
    }

    pub async fn update_organization(
        &self,
        principal: &Principal,
        id: OrganizationId,
        patch: OrganizationPatch,
        idempotency: Option<Idempotency<Organization>>,
    ) -> Result<Organization, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let name = patch
            .name
            .as_deref()
            .map(OrganizationName::parse)
            .transpose();
        let billing_email = patch
            .billing_email
            .as_ref()
            .map(|email| email.as_deref().map(BillingEmail::parse).transpose())
            .transpose();
        // Everything the request alone decides is checked before the organization is read
        // (422 before 404 and 409, API.md §1.2); only the bounds of the merged metadata wait.
        let metadata_pairs = patch.metadata.as_ref().map(MetadataPatch::check_pairs);
        let (name, billing_email) = match (name, billing_email, metadata_pairs) {
            (Ok(name), Ok(email), None | Some(Ok(()))) => (name, email),
            (name, email, pairs) => {
                let errors = [name.err(), email.err()]
                    .into_iter()
                    .flatten()
                    .chain(pairs.and_then(Result::err).into_iter().flatten())
                    .collect();
                return Err(DomainError::Validation(errors));
            }
        };
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load_child(principal, id).await?;
            if let OrganizationStatus::Archived { .. } = current.status {
                return Err(state_conflict(
                    &current,
                    "an archived organization cannot be changed",
                ));
            }
            let metadata = match &patch.metadata {
                Some(change) => current
                    .metadata
                    .patched(change.clone())
                    .map_err(DomainError::Validation)?,
                None => current.metadata.clone(),
            };
            let mut next = current.clone();
            if let Some(name) = &name {
                next.name = name.clone();
            }
            if let Some(email) = &billing_email {
                next.billing_email = email.clone();
            }
            next.metadata = metadata;
            if next == current {
                return Ok(current);
            }
            let now = self.ports.clock.now();
            next.updated_at = now;
            next.revision = current.revision.next();
            let changed = changed_fields(&current, &next);
            let trail = Trail::none()
                .with_audit(self.audit_event(
                    Some(principal),
                    next.id,
                    AuditEventType::OrganizationUpdated,
                    &AuditData::Changed { fields: changed },
                    now,
                ))
                .with_event(self.organization_event(EventType::OrganizationUpdated, &next, None));
            let done = idempotency.as_ref().map(|i| i.complete(&next, now));
            let write = self
                .ports
                .organizations
                .update(&next, current.revision, &trail, done)
                .await?;
            if write == Write::Applied {
                return Ok(next);
            }
        }
        Err(contention())
    }

    /// The kill switch: from the answer on, the child's own keys get `503 KILL_SWITCH`.
    pub async fn suspend_organization(
        &self,
        principal: &Principal,
        id: OrganizationId,
        reason: Option<String>,
        idempotency: Option<Idempotency<Organization>>,
    ) -> Result<Organization, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        if let Some(reason) = &reason {
            crate::validation::no_nul("reason", reason).map_err(DomainError::validation)?;
            if reason.chars().count() > MAX_REASON_CHARS {
                return Err(DomainError::validation(FieldError::new(
                    "reason",
                    format!("must be at most {MAX_REASON_CHARS} characters"),
                )));
            }
        }
        self.change_status(
            async || self.load_child(principal, id).await,
            LifecycleAction::Suspend,
            Some(principal),
            reason,
            idempotency,
        )
        .await
    }

    pub async fn resume_organization(
        &self,
        principal: &Principal,
        id: OrganizationId,
        idempotency: Option<Idempotency<Organization>>,
    ) -> Result<Organization, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        self.change_status(
            async || self.load_child(principal, id).await,
            LifecycleAction::Resume,
            Some(principal),
            None,
            idempotency,
        )
        .await
    }

    /// Offboards a child for good: archived, its keys revoked, in one atomic change — with the
    /// answer of its `Idempotency-Key`, whose figures only the store knows as it writes.
    pub async fn archive_organization(
        &self,
        principal: &Principal,
        id: OrganizationId,
        idempotency: Option<Idempotency<ArchiveReport>>,
    ) -> Result<ArchiveReport, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load_child(principal, id).await?;
            let now = self.ports.clock.now();
            let Transition::To(status) = decide(&current, LifecycleAction::Archive, now)? else {
                return Ok(ArchiveReport {
                    organization: current,
                    reclaimed_credits: 0,
                    revoked_api_keys: 0,
                });
            };
            let next = Organization {
                status,
                updated_at: now,
                revision: current.revision.next(),
                ..current.clone()
            };
            let reclaim = Reclaim {
                child_event: self.new_ledger_event_id(now),
                parent_event: self.new_ledger_event_id(now),
                transfer_id: TransferId::from_uuid(self.new_uuid()),
            };
            let trail = self
                .transition_trail(Some(principal), &current, &next, None)
                .reclaiming(self.reclaim_trail(Some(principal), &next, reclaim, now));
            let archived_org = next.clone();
            let done = idempotency.as_ref().map(|i| {
                i.pending(now, move |archived: &Archive| {
                    ArchiveReport::of(archived_org.clone(), archived)
                })
            });
            let archived = self
                .ports
                .organizations
                .archive(&next, current.revision, reclaim, &trail, done)
                .await?;
            if let Archive::Applied { .. } = archived {
                return Ok(ArchiveReport::of(next, &archived));
            }
        }
        Err(contention())
    }

    /// Applies a suspend or resume to the organization `load` reads, retrying on fresh state
    /// when a concurrent writer got there first.
    pub(super) async fn change_status(
        &self,
        load: impl AsyncFn() -> Result<Organization, DomainError>,
        action: LifecycleAction,
        by: By<'_>,
        reason: Option<String>,
        idempotency: Option<Idempotency<Organization>>,
    ) -> Result<Organization, DomainError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = load().await?;
            let now = self.ports.clock.now();
            let Transition::To(status) = decide(&current, action, now)? else {
                return Ok(current);
            };
            let next = Organization {
                status,
                updated_at: now,
                revision: current.revision.next(),
                ..current.clone()
            };
            let trail = self.transition_trail(by, &current, &next, reason.clone());
            let done = idempotency.as_ref().map(|i| i.complete(&next, now));
            let write = self
                .ports
                .organizations
                .update(&next, current.revision, &trail, done)
                .await?;
            if write == Write::Applied {
                return Ok(next);
            }
        }
        Err(contention())
    }

    /// The audit and webhook events of a lifecycle transition from `current` to `next`.
    fn transition_trail(
        &self,
        by: By<'_>,
        current: &Organization,
        next: &Organization,
        reason: Option<String>,
    ) -> Trail {
        let to = next.status.kind();
        let (audit_type, event_type) = match to {
            StatusKind::Suspended => (
                AuditEventType::OrganizationSuspended,
                EventType::OrganizationSuspended,
            ),
            StatusKind::Active => (
                AuditEventType::OrganizationResumed,
                EventType::OrganizationResumed,
            ),
            StatusKind::Archived => (
                AuditEventType::OrganizationArchived,
                EventType::OrganizationArchived,
            ),
        };
        let data = AuditData::Transition {
            from: Some(current.status.kind()),
            to,
            reason: reason.clone(),
        };
        Trail::none()
            .with_audit(self.audit_event(by, next.id, audit_type, &data, next.updated_at))
            .with_event(self.organization_event(event_type, next, reason))
    }

    /// What an archive (or a late reservation end) records once it knows how many credits it
    /// moved from `child` back to its parent.
    pub(super) fn reclaim_trail(
        &self,
        by: By<'_>,
        child: &Organization,
        reclaim: Reclaim,
        at: crate::Timestamp,
    ) -> crate::trail::ReclaimTrail {
        let plane = self.clone();
        let by = by.cloned();
        let child_id = child.id;
        let Some(parent_id) = child.parent_id else {
            return std::sync::Arc::new(|_| Trail::none());
        };
        std::sync::Arc::new(move |credits| {
            let data = AuditData::Credits {
                credits,
                transfer_id: Some(reclaim.transfer_id.to_string()),
                from_organization_id: Some(child_id),
                to_organization_id: Some(parent_id),
            };
            let subject = EventSubject::Credits {
                organization_id: child_id,
                transfer_id: reclaim.transfer_id.to_string(),
                credits,
                from_organization_id: child_id,
                to_organization_id: parent_id,
            };
            Trail::none()
                .with_audit(plane.audit_event(
                    by.as_ref(),
                    child_id,
                    AuditEventType::CreditsReclaimed,
                    &data,
                    at,
                ))
                .with_event(plane.webhook_event(EventType::CreditsReclaimed, subject, None, at))
        })
    }

    /// The organization `id` if it is a direct child of the principal's, else `404`.
    pub(super) async fn load_child(
        &self,
        principal: &Principal,
        id: OrganizationId,
    ) -> Result<Organization, DomainError> {
        let found = self.ports.organizations.find(id).await?;
        policy::direct_child(principal, found)
    }
}

fn decide(
    org: &Organization,
    action: LifecycleAction,
    now: Timestamp,
) -> Result<Transition, DomainError> {
    lifecycle::decide(org.status, action, now)
        .map_err(|_| state_conflict(org, "the organization is archived, a terminal state"))
}

pub(super) fn state_conflict(org: &Organization, message: &str) -> DomainError {
    DomainError::Conflict {
        message: message.to_owned(),
        subject: ConflictSubject::Organization {
            id: org.id,
            status: org.status.kind(),
        },
    }
}

/// The API names of the fields a patch changed.
fn changed_fields(before: &Organization, after: &Organization) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if before.name != after.name {
        fields.push("name");
    }
    if before.billing_email != after.billing_email {
        fields.push("billingEmail");
    }
    if before.metadata != after.metadata {
        fields.push("metadata");
    }
    fields
}

fn contention() -> DomainError {
    DomainError::Store(StoreError::Unavailable(
        "the organization is changing too often to apply this change; retry".to_owned(),
    ))
}

pub(crate) fn organization_cursor(org: &Organization) -> PageCursor {
    PageCursor {
        created_at: org.created_at,
        id: org.id.as_uuid(),
    }
}
