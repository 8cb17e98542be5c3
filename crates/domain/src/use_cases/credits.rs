//! Credits (API.md §6): reading wallets and ledgers, the operator's grant, and allocation from a
//! parent to a child.

use super::recording::By;
use crate::audit::{AuditData, AuditEventType};
use crate::trail::{EventSubject, Trail};
use crate::webhooks::EventType;
use std::collections::BTreeMap;

use super::organizations::state_conflict;
use super::ControlPlane;
use crate::api_key::Scope;
use crate::credits::{
    month_of, CreditConfig, CreditConfigPatch, Credits, Direction, Finish, LedgerEntry,
    LedgerEvent, LedgerEventType, LedgerFilter, Reservation, ReservationId, ReservationStatus,
    TransferId, Wallet, RESERVATION_TTL,
};
use crate::error::ConflictSubject;
use crate::error::Resource;
use crate::idempotency::Idempotency;
use crate::jobs::{JobId, EXPIRE_RESERVATION, JOB_LEASE};
use crate::organization::{Metadata, Organization, OrganizationStatus};
use crate::pagination::{Page, PageCursor, PageRequest};
use crate::policy::{self, Principal};
use crate::ports::{Allocation, Reclaim, Reserve};
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

/// A ledger or reservation description: at most [`MAX_DESCRIPTION_CHARS`], no NUL.
fn check_description(description: Option<&str>) -> Result<(), FieldError> {
    let Some(text) = description else {
        return Ok(());
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    crate::validation::no_nul("description", text)
}

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
        if let Err(e) = check_description(input.description.as_deref()) {
            errors.push(e);
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
            reservation_id: None,
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
        let trail = self.allocation_trail(
            Some(principal),
            principal.organization.id,
            child.id,
            transfer_id,
            credits.get(),
            now,
        );
        match self
            .ports
            .credits
            .allocate(debit, credit, &trail, done)
            .await?
        {
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
        check_description(description.as_deref()).map_err(DomainError::validation)?;
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
            reservation_id: None,
            description,
            metadata: Metadata::default(),
            created_at: now,
        };
        let data = AuditData::Credits {
            credits: credits.get(),
            transfer_id: None,
            from_organization_id: None,
            to_organization_id: Some(organization.id),
        };
        let trail = Trail::none().with_audit(self.audit_event(
            None,
            organization.id,
            AuditEventType::CreditsGranted,
            &data,
            now,
        ));
        Ok(self.ports.credits.grant(entry, &trail).await?)
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

/// A reservation as the metering service sent it (API.md §6.4).
#[derive(Debug, Clone, Default)]
pub struct NewReservation {
    pub credits: i64,
    pub description: Option<String>,
}

impl ControlPlane {
    /// Holds credits of the acting organization for work about to run (`credits:write`). Refused
    /// while the organization or its parent is suspended — the kill switch holds for Rust
    /// callers of the domain too, not only at the HTTP gate — and when it is archived.
    pub async fn reserve_credits(
        &self,
        principal: &Principal,
        input: NewReservation,
        idempotency: Option<Idempotency<Reservation>>,
    ) -> Result<Reservation, DomainError> {
        policy::require_scope(principal, Scope::CreditsWrite)?;
        let mut errors = Vec::new();
        let credits = Credits::new(input.credits, "credits")
            .map_err(|e| errors.push(e))
            .ok();
        if let Err(e) = check_description(input.description.as_deref()) {
            errors.push(e);
        }
        let (Some(credits), true) = (credits, errors.is_empty()) else {
            return Err(DomainError::Validation(errors));
        };
        let organization = principal.acting_organization();
        policy::ensure_may_spend(organization)?;
        let now = self.ports.clock.now();
        let reservation = Reservation {
            id: ReservationId::from_uuid(self.new_uuid()),
            organization_id: organization.id,
            credits: credits.get(),
            status: ReservationStatus::Held,
            description: input.description,
            expires_at: now.plus(RESERVATION_TTL),
            created_at: now,
        };
        let data = AuditData::Reservation {
            reservation_id: reservation.id.to_string(),
            credits: reservation.credits,
        };
        let trail = Trail::none().with_audit(self.audit_event(
            Some(principal),
            organization.id,
            AuditEventType::ReservationCreated,
            &data,
            now,
        ));
        let done = idempotency.map(|i| i.complete(&reservation, now));
        let month = month_of(now);
        let outcome = self
            .ports
            .credits
            .reserve(
                reservation.clone(),
                JobId::from_uuid(self.new_uuid()),
                month,
                &trail,
                done,
            )
            .await?;
        match outcome {
            Reserve::Held => {
                self.refill_if_due(organization).await?;
                Ok(reservation)
            }
            Reserve::MonthlyCap { cap, committed } => Err(DomainError::MonthlyCapReached {
                cap,
                committed,
                requested: credits.get(),
            }),
            Reserve::InsufficientFunds { available } => Err(DomainError::InsufficientCredits {
                available,
                requested: credits.get(),
            }),
            // Suspended or archived between our read and the write: the store refused it.
            Reserve::Suspended | Reserve::Closed => Err(self.spending_refused(principal).await?),
        }
    }

    /// Why the store refused to spend for a request admitted a moment earlier, decided from what
    /// is true now. When the caller's own organization (or its parent) has been suspended since,
    /// that is the kill switch (API.md §3: `503 KILL_SWITCH` for its own keys), the answer the
    /// key's next request gets anyway — never a `409`, which is the parent's answer inside a
    /// suspended child (§2.3).
    async fn spending_refused(&self, principal: &Principal) -> Result<DomainError, DomainError> {
        // The authentication read again: the caller's key, its organization and the parent now.
        let credentials = self
            .ports
            .api_keys
            .find_credentials(&principal.key.handle)
            .await?;
        if let Some(credentials) = credentials {
            if let Err(kill_switch) = policy::kill_switch(&credentials, self.ports.clock.now()) {
                return Ok(DomainError::KillSwitch(kill_switch));
            }
        }
        let acting = principal.acting_organization();
        let acting_now = self
            .ports
            .organizations
            .find(acting.id)
            .await?
            .unwrap_or_else(|| acting.clone());
        Ok(match policy::ensure_may_spend(&acting_now) {
            Err(refused) => refused,
            Ok(()) => state_conflict(&acting_now, "the organization cannot spend credits now"),
        })
    }

    /// Auto-refill (API.md §6.5): when the organization's available balance is below its refill
    /// threshold, its refill amount moves from its parent, if the parent has it.
    async fn refill_if_due(&self, organization: &Organization) -> Result<(), DomainError> {
        let Some(parent) = organization.parent_id else {
            return Ok(());
        };
        let config = self.ports.credits.credit_config(organization.id).await?;
        let wallet = self.ports.credits.wallet(organization.id).await?;
        let Some(amount) = config.refill_for(&wallet) else {
            return Ok(());
        };
        let Ok(credits) = Credits::new(i64::try_from(amount).unwrap_or(i64::MAX), "refillAmount")
        else {
            return Ok(());
        };
        let now = self.ports.clock.now();
        let transfer_id = TransferId::from_uuid(self.new_uuid());
        let entry = |organization_id, direction| LedgerEntry {
            id: self.new_ledger_event_id(now),
            organization_id,
            event_type: LedgerEventType::Allocation,
            credits: credits.signed(direction),
            transfer_id: Some(transfer_id),
            reservation_id: None,
            description: Some("auto-refill".to_owned()),
            metadata: Metadata::default(),
            created_at: now,
        };
        // The server's own work, audited as the operator's.
        let trail = self.allocation_trail(
            None,
            parent,
            organization.id,
            transfer_id,
            credits.get(),
            now,
        );
        // A parent without the credits, or a child archived meanwhile, simply gets no refill.
        self.ports
            .credits
            .allocate(
                entry(parent, Direction::Out),
                entry(organization.id, Direction::In),
                &trail,
                None,
            )
            .await?;
        Ok(())
    }

    /// A direct child's spend controls (`org:admin`).
    pub async fn credit_config(
        &self,
        principal: &Principal,
        id: OrganizationId,
    ) -> Result<(CreditConfig, Wallet), DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let child = self.load_child(principal, id).await?;
        let config = self.ports.credits.credit_config(child.id).await?;
        Ok((config, self.ports.credits.wallet(child.id).await?))
    }

    /// Changes a direct child's spend controls (`org:admin`); archived children refuse writes.
    pub async fn update_credit_config(
        &self,
        principal: &Principal,
        id: OrganizationId,
        patch: CreditConfigPatch,
    ) -> Result<(CreditConfig, Wallet), DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        patch.check_values().map_err(DomainError::Validation)?;
        let current = self.ports.credits.credit_config(id).await;
        let child = self.load_child(principal, id).await?;
        let current = current?;
        let config = current.patched(patch).map_err(DomainError::Validation)?;
        policy::ensure_writable(&child)?;
        if config == current {
            // Nothing changes: nothing to write or audit.
            return Ok((config, self.ports.credits.wallet(child.id).await?));
        }
        let data = AuditData::CreditConfig(config);
        let trail = Trail::none().with_audit(self.audit_event(
            Some(principal),
            child.id,
            AuditEventType::CreditConfigUpdated,
            &data,
            self.ports.clock.now(),
        ));
        self.ports
            .credits
            .set_credit_config(child.id, config, &trail)
            .await?;
        self.refill_if_due(&child).await?;
        Ok((config, self.ports.credits.wallet(child.id).await?))
    }

    /// One reservation of the acting organization (`credits:read` or `credits:write`: the
    /// service that reserves and settles may read what it holds, API.md §6.4).
    pub async fn get_reservation(
        &self,
        principal: &Principal,
        id: ReservationId,
    ) -> Result<Reservation, DomainError> {
        policy::require_either_scope(principal, Scope::CreditsRead, Scope::CreditsWrite)?;
        self.own_reservation(principal, id).await
    }

    /// Spends `credits` of a held reservation and releases the rest (`credits:write`). Settling a
    /// reservation settled with the same amount, or one released or expired, returns it as it is;
    /// settling with another amount is a conflict.
    pub async fn settle_reservation(
        &self,
        principal: &Principal,
        id: ReservationId,
        credits: i64,
    ) -> Result<Reservation, DomainError> {
        policy::require_scope(principal, Scope::CreditsWrite)?;
        let invalid =
            |message: String| DomainError::validation(FieldError::new("credits", message));
        // The amount's shape is the request's, checked before the reservation is looked up
        // (API.md §1.2: 422 before 404); only "more than reserved" needs the reservation.
        let spent = u64::try_from(credits)
            .ok()
            .filter(|n| *n <= Credits::MAX)
            .ok_or_else(|| {
                invalid("must be an integer from 0 to the reserved credits".to_owned())
            })?;
        let reservation = self.own_reservation(principal, id).await?;
        if spent > reservation.credits {
            return Err(invalid(format!(
                "must be an integer from 0 to {} (the reserved credits)",
                reservation.credits
            )));
        }
        let finished = self
            .finish(
                &reservation,
                Finish::Settle { credits: spent },
                Some(principal),
            )
            .await?;
        match finished.status {
            ReservationStatus::Settled { credits, .. } if credits != spent => {
                Err(DomainError::Conflict {
                    message: format!("the reservation was already settled with {credits} credits"),
                    subject: ConflictSubject::Reservation {
                        id: finished.id,
                        status: finished.status.as_str(),
                    },
                })
            }
            _ => Ok(finished),
        }
    }

    /// Releases a held reservation in full (`credits:write`); a finished one is returned as it is.
    pub async fn release_reservation(
        &self,
        principal: &Principal,
        id: ReservationId,
    ) -> Result<Reservation, DomainError> {
        policy::require_scope(principal, Scope::CreditsWrite)?;
        let reservation = self.own_reservation(principal, id).await?;
        self.finish(&reservation, Finish::Release, Some(principal))
            .await
    }

    /// The scheduled work the domain owns (API.md §6.4, §8): releases the reservations whose
    /// expiry job is due — none of a suspended organization's, which are held. Returns how many
    /// jobs it ran.
    pub async fn run_scheduled_work(&self) -> Result<usize, DomainError> {
        let now = self.ports.clock.now();
        let leases = self
            .ports
            .jobs
            .claim(
                vec![EXPIRE_RESERVATION.to_owned()],
                now,
                now.plus(JOB_LEASE),
                100,
            )
            .await?;
        for lease in &leases {
            let reservation = match ReservationId::parse(&lease.job.payload) {
                Ok(id) => self.ports.credits.find_reservation(id).await?,
                Err(_) => None,
            };
            // Expiring a reservation that was settled or released meanwhile returns it as it
            // is: the job is done either way.
            if let Some(reservation) = reservation {
                self.finish(&reservation, Finish::Expire, None).await?;
            }
            self.ports.jobs.complete(lease).await?;
        }
        Ok(leases.len())
    }

    /// Ends a reservation: settled or released by `by`, or expired by the server (`None`).
    async fn finish(
        &self,
        reservation: &Reservation,
        finish: Finish,
        by: By<'_>,
    ) -> Result<Reservation, DomainError> {
        let now = self.ports.clock.now();
        let reclaim = Reclaim {
            child_event: self.new_ledger_event_id(now),
            parent_event: self.new_ledger_event_id(now),
            transfer_id: TransferId::from_uuid(self.new_uuid()),
        };
        let usage = self.new_ledger_event_id(now);
        let (audit_type, credits) = match finish {
            Finish::Settle { credits } => (AuditEventType::ReservationSettled, credits),
            Finish::Release => (AuditEventType::ReservationReleased, reservation.credits),
            Finish::Expire => (AuditEventType::ReservationExpired, reservation.credits),
        };
        let data = AuditData::Reservation {
            reservation_id: reservation.id.to_string(),
            credits,
        };
        let mut trail = Trail::none().with_audit(self.audit_event(
            by,
            reservation.organization_id,
            audit_type,
            &data,
            now,
        ));
        // Ending a reservation of an archived organization returns the rest to the parent.
        if let Some(organization) = self
            .ports
            .organizations
            .find(reservation.organization_id)
            .await?
        {
            trail = trail.reclaiming(self.reclaim_trail(by, &organization, reclaim, now));
        }
        self.ports
            .credits
            .finish_reservation(reservation.id, finish, now, usage, reclaim, &trail)
            .await?
            .ok_or(DomainError::NotFound(Resource::Reservation))
    }

    /// An allocation from `parent` to `child`: audited on the child, `credits.allocated`.
    fn allocation_trail(
        &self,
        by: By<'_>,
        parent: OrganizationId,
        child: OrganizationId,
        transfer_id: TransferId,
        credits: u64,
        at: crate::Timestamp,
    ) -> Trail {
        let data = AuditData::Credits {
            credits,
            transfer_id: Some(transfer_id.to_string()),
            from_organization_id: Some(parent),
            to_organization_id: Some(child),
        };
        let subject = EventSubject::Credits {
            organization_id: child,
            transfer_id: transfer_id.to_string(),
            credits,
            from_organization_id: parent,
            to_organization_id: child,
        };
        Trail::none()
            .with_audit(self.audit_event(by, child, AuditEventType::CreditsAllocated, &data, at))
            .with_event(self.webhook_event(EventType::CreditsAllocated, subject, None, at))
    }

    async fn own_reservation(
        &self,
        principal: &Principal,
        id: ReservationId,
    ) -> Result<Reservation, DomainError> {
        let organization = principal.acting_organization().id;
        self.ports
            .credits
            .find_reservation(id)
            .await?
            .filter(|r| r.organization_id == organization)
            .ok_or(DomainError::NotFound(Resource::Reservation))
    }
}
