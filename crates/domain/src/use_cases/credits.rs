//! Credits (API.md §6): reading wallets and ledgers, the operator's grant, and allocation from a
//! parent to a child.

use std::collections::BTreeMap;

use super::organizations::state_conflict;
use super::ControlPlane;
use crate::api_key::Scope;
use crate::credits::{
    month_of, Credits, Direction, LedgerEntry, LedgerEvent, LedgerEventType, LedgerFilter,
    TransferId, Wallet,
};
use crate::error::Resource;
use crate::idempotency::Idempotency;
use crate::organization::{Metadata, Organization, OrganizationStatus};
use crate::pagination::{Page, PageCursor, PageRequest};
use crate::policy::{self, Principal};
use crate::ports::Allocation;
use crate::validation::FieldError;
use crate::{DomainError, OrganizationId, Timestamp};

/// A wallet as `GET …/credits` shows it (API.md §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditsView {
    pub wallet: Wallet,
    pub used_this_period: u64,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
}

/// An allocation as the caller sent it (API.md §6.2).
#[derive(Debug, Clone, Default)]
pub struct NewAllocation {
    pub credits: i64,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// What an allocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationReport {
    pub transfer_id: TransferId,
    pub allocated: u64,
    pub created_at: Timestamp,
    pub description: Option<String>,
    pub metadata: Metadata,
    /// The child's wallet right after.
    pub child_wallet: Wallet,
}

pub const MAX_DESCRIPTION_CHARS: usize = 500;

impl ControlPlane {
    /// The acting organization's credits (`credits:read`).
    pub async fn own_credits(&self, principal: &Principal) -> Result<CreditsView, DomainError> {
        policy::require_scope(principal, Scope::CreditsRead)?;
        self.credits_view(principal.acting_organization().id).await
    }

    /// A direct child's credits (`org:admin`).
    pub async fn child_credits(
        &self,
        principal: &Principal,
        id: OrganizationId,
    ) -> Result<CreditsView, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let child = self.load_child(principal, id).await?;
        self.credits_view(child.id).await
    }

    /// The acting organization's ledger (`credits:read`).
    pub async fn own_ledger(
        &self,
        principal: &Principal,
        filter: LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEvent>, DomainError> {
        policy::require_scope(principal, Scope::CreditsRead)?;
        self.ledger_of(principal.acting_organization().id, filter, page)
            .await
    }

    /// A direct child's ledger (`org:admin`).
    pub async fn child_ledger(
        &self,
        principal: &Principal,
        id: OrganizationId,
        filter: LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEvent>, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let child = self.load_child(principal, id).await?;
        self.ledger_of(child.id, filter, page).await
    }

    /// Moves credits from the caller's organization to a direct child (API.md §6.2).
    pub async fn allocate_credits(
        &self,
        principal: &Principal,
        child_id: OrganizationId,
        input: NewAllocation,
        idempotency: Option<Idempotency<AllocationReport>>,
    ) -> Result<AllocationReport, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let mut errors = Vec::new();
        let credits = Credits::new(input.credits, "credits")
            .map_err(|e| errors.push(e))
            .ok();
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let metadata = Metadata::from_input(input.metadata)
            .map_err(|e| errors.extend(e))
            .ok();
        let (Some(credits), Some(metadata), true) = (credits, metadata, errors.is_empty()) else {
            return Err(DomainError::Validation(errors));
        };
        let child = self.load_child(principal, child_id).await?;
        if let OrganizationStatus::Archived { .. } = child.status {
            return Err(state_conflict(
                &child,
                "an archived organization cannot receive credits",
            ));
        }
        let now = self.ports.clock.now();
        let transfer_id = TransferId::from_uuid(self.new_uuid());
        let entry = |organization: &Organization, direction| LedgerEntry {
            id: self.new_ledger_event_id(now),
            organization_id: organization.id,
            event_type: LedgerEventType::Allocation,
            credits: credits.signed(direction),
            transfer_id: Some(transfer_id),
            description: input.description.clone(),
            metadata: metadata.clone(),
            created_at: now,
        };
        let debit = entry(&principal.organization, Direction::Out);
        let credit = entry(&child, Direction::In);
        let report = AllocationReport {
            transfer_id,
            allocated: credits.get(),
            created_at: now,
            description: input.description.clone(),
            metadata: metadata.clone(),
            child_wallet: Wallet::empty(child.id),
        };
        // The answer shows the child's wallet after the allocation, which only the store knows
        // while it writes: it renders the idempotency record from it, in the same change.
        let template = report.clone();
        let done = idempotency.map(|i| {
            i.pending(now, move |wallet: &Wallet| AllocationReport {
                child_wallet: *wallet,
                ..template.clone()
            })
        });
        match self.ports.credits.allocate(debit, credit, done).await? {
            Allocation::Applied { child_wallet, .. } => Ok(AllocationReport {
                child_wallet,
                ..report
            }),
            Allocation::InsufficientFunds { available } => Err(DomainError::InsufficientCredits {
                available,
                requested: credits.get(),
            }),
            Allocation::ChildClosed => {
                let now_archived = self.load_child(principal, child_id).await?;
                Err(state_conflict(
                    &now_archived,
                    "an archived organization cannot receive credits",
                ))
            }
        }
    }

    /// The operator funds a top-level organization (API.md §9).
    pub async fn grant_credits(
        &self,
        id: OrganizationId,
        amount: i64,
        description: Option<String>,
    ) -> Result<LedgerEvent, DomainError> {
        let credits = Credits::new(amount, "credits").map_err(DomainError::validation)?;
        if let Some(text) = &description {
            crate::validation::no_nul("description", text).map_err(DomainError::validation)?;
        }
        let organization = self
            .ports
            .organizations
            .find(id)
            .await?
            .filter(Organization::is_top_level)
            .ok_or(DomainError::NotFound(Resource::Organization))?;
        if let OrganizationStatus::Archived { .. } = organization.status {
            return Err(state_conflict(
                &organization,
                "an archived organization cannot receive credits",
            ));
        }
        let now = self.ports.clock.now();
        let entry = LedgerEntry {
            id: self.new_ledger_event_id(now),
            organization_id: organization.id,
            event_type: LedgerEventType::Grant,
            credits: credits.signed(Direction::In),
            transfer_id: None,
            description,
            metadata: Metadata::default(),
            created_at: now,
        };
        Ok(self.ports.credits.grant(entry).await?)
    }

    async fn credits_view(&self, id: OrganizationId) -> Result<CreditsView, DomainError> {
        let (period_start, period_end) = month_of(self.ports.clock.now());
        let wallet = self.ports.credits.wallet(id).await?;
        let used_this_period = self
            .ports
            .credits
            .usage_between(id, period_start, period_end)
            .await?;
        Ok(CreditsView {
            wallet,
            used_this_period,
            period_start,
            period_end,
        })
    }

    async fn ledger_of(
        &self,
        id: OrganizationId,
        filter: LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEvent>, DomainError> {
        let rows = self
            .ports
            .credits
            .ledger(id, filter, page.overfetch())
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |event| PageCursor {
            created_at: event.entry.created_at,
            id: event.entry.id.as_uuid(),
        }))
    }
}
