//! The embedded store: every store port in process memory. It is the default when no database is
//! configured, and what Rust services embedding the domain use in their tests.
//!
//! One mutex guards all state, and every port method does all of its work under one lock: a
//! multi-step change (archive: status and keys) is atomic, and compare-and-set writes are exact,
//! just as in the PostgreSQL store. Nothing here awaits while holding the lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use domain::api_key::{ApiKey, KeyHandle, KeyStatus, RateLimitTier, SecretHash, Supersession};
use domain::credits::{
    CreditConfig, Finish, LedgerEntry, LedgerEvent, LedgerEventId, LedgerEventType, LedgerFilter,
    Reservation, ReservationId, ReservationStatus, Wallet,
};
use domain::idempotency::{
    Claim, ClaimOutcome, Completion, Fingerprint, IdempotencyScope, PendingCompletion,
    StoredResponse,
};
use domain::jobs::{Job, JobId, Lease, EXPIRE_RESERVATION};
use domain::organization::Metadata;
use domain::organization::{Organization, OrganizationStatus, Revision, StatusKind};
use domain::pagination::PageRequest;
use domain::policy::Credentials;
use domain::ports::{
    Allocation, ApiKeyStore, Archive, CreditStore, IdempotencyStore, JobQueue, KeyInsert,
    OrganizationStore, Reclaim, Reserve, Rotation, StoreError, Write,
};
use domain::trail::Trail;
use domain::{ApiKeyId, OrganizationId, Timestamp};
use uuid::Uuid;

mod webhooks;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    organizations: HashMap<OrganizationId, Organization>,
    api_keys: HashMap<ApiKeyId, ApiKey>,
    key_ids_by_handle: HashMap<KeyHandle, ApiKeyId>,
    idempotency: HashMap<IdempotencyScope, Record>,
    wallets: HashMap<OrganizationId, Wallet>,
    ledger: Vec<LedgerEvent>,
    reservations: HashMap<ReservationId, Reservation>,
    credit_configs: HashMap<OrganizationId, CreditConfig>,
    jobs: HashMap<JobId, Scheduled>,
    audit: Vec<domain::audit::AuditEvent>,
    /// The last kill-switch refusal audited, per key.
    refusals: HashMap<ApiKeyId, Timestamp>,
    endpoints: HashMap<domain::webhooks::EndpointId, domain::webhooks::WebhookEndpoint>,
    events: HashMap<domain::webhooks::EventId, domain::webhooks::Event>,
    deliveries: HashMap<domain::webhooks::DeliveryId, domain::webhooks::Delivery>,
    jobs_scheduled: u64,
}

/// A job and who holds it. Done and cancelled jobs are removed.
struct Scheduled {
    job: Job,
    claim: Option<(Uuid, Timestamp)>,
    /// When it was scheduled, among all jobs: the order of jobs due at one instant.
    seq: u64,
    /// A claim met it due while it was held; cleared when it is scheduled again.
    was_held: bool,
}

/// An idempotency record: a claim in flight, or the final response.
struct Record {
    fingerprint: Fingerprint,
    progress: Progress,
    expires_at: Timestamp,
}

enum Progress {
    InFlight { token: Uuid, lease_until: Timestamp },
    Done(StoredResponse),
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every method checks before it mutates, so a panic under the lock cannot leave half a
        // change behind: a poisoned lock still guards consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Newest first by creation time, then by id; strictly after the cursor; at most `limit`.
fn page<'a, T: Clone + 'a>(
    rows: impl Iterator<Item = &'a T>,
    position: impl Fn(&T) -> (Timestamp, Uuid),
    request: PageRequest,
) -> Vec<T> {
    let mut rows: Vec<T> = rows
        .filter(|row| {
            let (created_at, id) = position(row);
            request
                .after
                .is_none_or(|cursor| cursor.precedes(created_at, id))
        })
        .cloned()
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(position(row)));
    rows.truncate(request.limit);
    rows
}

impl State {
    fn schedule(&mut self, job: Job) {
        self.jobs_scheduled += 1;
        let seq = self.jobs_scheduled;
        self.jobs.insert(
            job.id,
            Scheduled {
                job,
                claim: None,
                seq,
                was_held: false,
            },
        );
    }

    /// The first job of each queue — by `run_at`, then by when it was scheduled — which alone
    /// of its queue may be claimed, and only while no job of the queue is claimed (`None`).
    fn queue_heads(&self, now: Timestamp) -> HashMap<&str, Option<(Timestamp, u64)>> {
        let mut heads: HashMap<&str, Option<(Timestamp, u64)>> = HashMap::new();
        for scheduled in self.jobs.values() {
            if let Some(queue) = &scheduled.job.queue {
                let position = (scheduled.job.run_at, scheduled.seq);
                let busy = scheduled.claim.is_some_and(|(_, until)| until > now);
                let head = heads.entry(queue.as_str()).or_insert(Some(position));
                *head = match (*head, busy) {
                    (None, _) | (_, true) => None,
                    (Some(first), false) => Some(first.min(position)),
                };
            }
        }
        heads
    }

    /// Whether the organization, or its parent, is suspended: nothing of it spends or runs.
    fn held_by_kill_switch(&self, id: OrganizationId) -> bool {
        let suspended = |id: &OrganizationId| {
            self.organizations
                .get(id)
                .is_some_and(|org| org.status.kind() == StatusKind::Suspended)
        };
        let parent = self.organizations.get(&id).and_then(|org| org.parent_id);
        suspended(&id) || parent.as_ref().is_some_and(suspended)
    }

    /// Credits the organization spent (`usage` events) in `[start, end)`.
    fn spent_between(&self, organization: OrganizationId, start: Timestamp, end: Timestamp) -> u64 {
        self.ledger
            .iter()
            .filter(|e| {
                e.entry.organization_id == organization
                    && e.entry.event_type == LedgerEventType::Usage
                    && e.entry.created_at >= start
                    && e.entry.created_at < end
            })
            .map(|e| e.entry.credits.unsigned_abs())
            .sum()
    }

    fn wallet(&self, id: OrganizationId) -> Wallet {
        self.wallets
            .get(&id)
            .copied()
            .unwrap_or_else(|| Wallet::empty(id))
    }

    /// Appends an entry to the ledger, moving its wallet's balance by the entry's credits.
    fn record(&mut self, entry: LedgerEntry) -> LedgerEvent {
        let mut wallet = self.wallet(entry.organization_id);
        wallet.balance = wallet.balance.saturating_add_signed(entry.credits);
        self.wallets.insert(wallet.organization_id, wallet);
        let event = LedgerEvent {
            entry,
            balance_after: wallet.balance,
        };
        self.ledger.push(event.clone());
        event
    }

    /// Moves an archived child's unreserved credits to its parent; returns how many.
    fn sweep(
        &mut self,
        child: OrganizationId,
        parent: OrganizationId,
        reclaim: Reclaim,
        at: Timestamp,
    ) -> u64 {
        let amount = self.wallet(child).available();
        self.move_to_parent(child, parent, amount, reclaim, None, at)
    }

    /// Moves `amount` of a child's balance to its parent as two `reclaim` events, naming the
    /// reservation whose release it is, if any, with its description (as every event of a
    /// reservation's end does).
    fn move_to_parent(
        &mut self,
        child: OrganizationId,
        parent: OrganizationId,
        amount: u64,
        reclaim: Reclaim,
        released_by: Option<&Reservation>,
        at: Timestamp,
    ) -> u64 {
        let Ok(signed) = i64::try_from(amount) else {
            return 0;
        };
        if signed == 0 {
            return 0;
        }
        let entry = |id, organization_id, credits| LedgerEntry {
            id,
            organization_id,
            event_type: LedgerEventType::Reclaim,
            credits,
            transfer_id: Some(reclaim.transfer_id),
            reservation_id: released_by.map(|r| r.id),
            description: released_by.and_then(|r| r.description.clone()),
            metadata: Metadata::default(),
            created_at: at,
        };
        self.record(entry(reclaim.child_event, child, -signed));
        self.record(entry(reclaim.parent_event, parent, signed));
        amount
    }

    /// Refuses a completion whose claim is no longer in flight under its token. Called before
    /// anything is changed, so a refusal writes nothing.
    fn check_claim(&self, claim: Option<&Claim>) -> Result<(), StoreError> {
        let Some(claim) = claim else {
            return Ok(());
        };
        match self.idempotency.get(&claim.scope).map(|r| &r.progress) {
            Some(Progress::InFlight { token, .. }) if *token == claim.token => Ok(()),
            _ => Err(StoreError::Unavailable(
                "the idempotency claim of this request was lost; retry".to_owned(),
            )),
        }
    }

    /// Writes a completion checked by [`Self::check_claim`]; a no-op when there is none.
    fn write_completion(&mut self, done: Option<Completion>) {
        if let Some(done) = done {
            if let Some(record) = self.idempotency.get_mut(&done.claim.scope) {
                record.progress = Progress::Done(done.response);
                record.expires_at = done.expires_at;
            }
        }
    }

    /// Whether the organization exists and is not archived: it may get keys.
    fn is_open(&self, id: OrganizationId) -> bool {
        self.organizations
            .get(&id)
            .is_some_and(|org| org.status.kind() != StatusKind::Archived)
    }

    fn check_unique(&self, key: &ApiKey) -> Result<(), StoreError> {
        if self.api_keys.contains_key(&key.id) || self.key_ids_by_handle.contains_key(&key.handle) {
            return Err(StoreError::Duplicate(format!("API key {}", key.id)));
        }
        Ok(())
    }

    fn add_key(&mut self, key: &ApiKey) {
        self.key_ids_by_handle.insert(key.handle.clone(), key.id);
        self.api_keys.insert(key.id, key.clone());
    }
}

impl MemoryStore {
    /// Applies `change` to the key if it is usable at `at`, writing `trail` and `done` (rendered
    /// from the changed key) with it; returns the key as it is afterwards.
    fn change_if_usable(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
        change: impl FnOnce(&mut ApiKey),
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut state = self.state();
        let Some(key) = state.api_keys.get(&id) else {
            return Ok(None);
        };
        if !key.is_usable_at(at) {
            return Ok(Some(key.clone()));
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        let Some(key) = state.api_keys.get_mut(&id) else {
            return Ok(None);
        };
        change(key);
        let changed = key.clone();
        state.write_trail(trail, 0);
        state.write_completion(done.map(|d| d.resolve(&changed)));
        Ok(Some(changed))
    }
}

fn is_current(state: &State, id: OrganizationId, expected: Revision) -> bool {
    state
        .organizations
        .get(&id)
        .is_some_and(|stored| stored.revision == expected)
}

#[async_trait]
impl OrganizationStore for MemoryStore {
    async fn insert(
        &self,
        org: &Organization,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.organizations.contains_key(&org.id) {
            return Err(StoreError::Duplicate(format!("organization {}", org.id)));
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.organizations.insert(org.id, org.clone());
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(())
    }

    async fn find(&self, id: OrganizationId) -> Result<Option<Organization>, StoreError> {
        Ok(self.state().organizations.get(&id).cloned())
    }

    async fn list_children(
        &self,
        parent: OrganizationId,
        status: Option<StatusKind>,
        request: PageRequest,
    ) -> Result<Vec<Organization>, StoreError> {
        let state = self.state();
        let children = state
            .organizations
            .values()
            .filter(|org| org.is_child_of(parent) && status.is_none_or(|s| org.status.kind() == s));
        Ok(page(
            children,
            |org| (org.created_at, org.id.as_uuid()),
            request,
        ))
    }

    async fn update(
        &self,
        org: &Organization,
        expected: Revision,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Write, StoreError> {
        if let OrganizationStatus::Archived { .. } = org.status {
            return Err(StoreError::Internal(
                "archiving goes through OrganizationStore::archive".into(),
            ));
        }
        let mut state = self.state();
        if !is_current(&state, org.id, expected) {
            return Ok(Write::Stale);
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.organizations.insert(org.id, org.clone());
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(Write::Applied)
    }

    async fn archive(
        &self,
        org: &Organization,
        expected: Revision,
        reclaim: Reclaim,
        trail: &Trail,
        done: Option<PendingCompletion<Archive>>,
    ) -> Result<Archive, StoreError> {
        let OrganizationStatus::Archived { at } = org.status else {
            return Err(StoreError::Internal(
                "archive needs an archived organization".into(),
            ));
        };
        let mut state = self.state();
        if !is_current(&state, org.id, expected) {
            return Ok(Archive::Stale);
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.organizations.insert(org.id, org.clone());
        let mut revoked_keys = 0;
        for key in state.api_keys.values_mut() {
            if key.organization_id == org.id && key.is_usable_at(at) {
                key.status = KeyStatus::Revoked { at };
                revoked_keys += 1;
            }
        }
        let reclaimed_credits = match org.parent_id {
            Some(parent) => state.sweep(org.id, parent, reclaim, at),
            None => 0,
        };
        // Its scheduled work is cancelled, except the expiry of reservations still held: those
        // must still end, and what they release goes to the parent (API.md §4.9).
        state.jobs.retain(|_, scheduled| {
            scheduled.job.organization_id != Some(org.id)
                || scheduled.job.kind == EXPIRE_RESERVATION
        });
        state.cancel_deliveries_of(org.id, at);
        state.write_trail(trail, reclaimed_credits);
        let applied = Archive::Applied {
            revoked_keys,
            reclaimed_credits,
        };
        state.write_completion(done.map(|d| d.resolve(&applied)));
        Ok(applied)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert(
        &self,
        key: &ApiKey,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<KeyInsert, StoreError> {
        let mut state = self.state();
        if !state.is_open(key.organization_id) {
            return Ok(KeyInsert::OrganizationClosed);
        }
        state.check_unique(key)?;
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.add_key(key);
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(KeyInsert::Inserted)
    }

    async fn find(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.state().api_keys.get(&id).cloned())
    }

    async fn list(
        &self,
        organization: OrganizationId,
        request: PageRequest,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let state = self.state();
        let keys = state
            .api_keys
            .values()
            .filter(|key| key.organization_id == organization);
        Ok(page(
            keys,
            |key| (key.created_at, key.id.as_uuid()),
            request,
        ))
    }

    async fn revoke(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.change_if_usable(id, at, trail, done, |key| {
            key.status = KeyStatus::Revoked { at }
        })
    }

    async fn kill(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.change_if_usable(id, at, trail, done, |key| {
            key.status = KeyStatus::Killed { at }
        })
    }

    async fn rotate(
        &self,
        old: ApiKeyId,
        supersession: Supersession,
        at: Timestamp,
        new: &ApiKey,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Rotation, StoreError> {
        let mut state = self.state();
        let Some(current) = state.api_keys.get(&old) else {
            return Ok(Rotation::KeyNotRotatable);
        };
        if !current.is_usable_at(at) || current.superseded.is_some() {
            return Ok(Rotation::KeyNotRotatable);
        }
        if !state.is_open(new.organization_id) {
            return Ok(Rotation::OrganizationClosed);
        }
        state.check_unique(new)?;
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        if let Some(current) = state.api_keys.get_mut(&old) {
            current.rotated_at = Some(at);
            current.superseded = Some(supersession);
        }
        state.add_key(new);
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(Rotation::Applied)
    }

    async fn replace_secret(
        &self,
        id: ApiKeyId,
        handle: &KeyHandle,
        hash: &SecretHash,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut state = self.state();
        let Some(current) = state.api_keys.get(&id) else {
            return Ok(None);
        };
        if !current.is_usable_at(at) {
            return Ok(Some(current.clone()));
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        if state.key_ids_by_handle.contains_key(handle) {
            return Err(StoreError::Duplicate(format!(
                "API key handle {}",
                handle.as_str()
            )));
        }
        let old_handle = current.handle.clone();
        state.key_ids_by_handle.remove(&old_handle);
        state.key_ids_by_handle.insert(handle.clone(), id);
        let Some(key) = state.api_keys.get_mut(&id) else {
            return Ok(None);
        };
        key.handle = handle.clone();
        key.secret_hash = hash.clone();
        key.rotated_at = Some(at);
        let changed = key.clone();
        state.write_trail(trail, 0);
        state.write_completion(done.map(|d| d.resolve(&changed)));
        Ok(Some(changed))
    }

    async fn set_rate_limit_tier(
        &self,
        id: ApiKeyId,
        tier: RateLimitTier,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut state = self.state();
        Ok(state.api_keys.get_mut(&id).map(|key| {
            key.rate_limit_tier = tier;
            key.clone()
        }))
    }

    async fn record_last_used(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        let mut state = self.state();
        for (id, at) in uses {
            if let Some(key) = state.api_keys.get_mut(id) {
                key.last_used_at = Some(key.last_used_at.map_or(*at, |seen| seen.max(*at)));
            }
        }
        Ok(())
    }

    async fn count_active(
        &self,
        organization: OrganizationId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let state = self.state();
        let active = state
            .api_keys
            .values()
            .filter(|key| key.organization_id == organization && key.is_usable_at(now))
            .count();
        Ok(active as u64)
    }

    async fn find_credentials(
        &self,
        handle: &KeyHandle,
    ) -> Result<Option<Credentials>, StoreError> {
        let state = self.state();
        let Some(key) = state
            .key_ids_by_handle
            .get(handle)
            .and_then(|id| state.api_keys.get(id))
        else {
            return Ok(None);
        };
        let Some(organization) = state.organizations.get(&key.organization_id) else {
            return Ok(None);
        };
        let parent = organization
            .parent_id
            .and_then(|id| state.organizations.get(&id))
            .cloned();
        Ok(Some(Credentials {
            key: key.clone(),
            organization: organization.clone(),
            parent,
        }))
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        fingerprint: Fingerprint,
        token: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.state();
        let claimable = match state.idempotency.get(scope) {
            None => true,
            Some(record) if record.expires_at <= now => true,
            Some(record) if record.fingerprint != fingerprint => return Ok(ClaimOutcome::Mismatch),
            Some(Record {
                progress: Progress::Done(response),
                ..
            }) => return Ok(ClaimOutcome::Replay(response.clone())),
            Some(Record {
                progress: Progress::InFlight { lease_until, .. },
                ..
            }) => *lease_until <= now,
        };
        if !claimable {
            return Ok(ClaimOutcome::InFlight);
        }
        state.idempotency.insert(
            scope.clone(),
            Record {
                fingerprint,
                progress: Progress::InFlight { token, lease_until },
                // An abandoned claim is claimable after its lease; the record lives until then.
                expires_at: lease_until,
            },
        );
        Ok(ClaimOutcome::Claimed(Claim {
            scope: scope.clone(),
            token,
        }))
    }

    async fn complete(&self, completion: &Completion) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.check_claim(Some(&completion.claim)).is_ok() {
            state.write_completion(Some(completion.clone()));
        }
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let mut state = self.state();
        let ours = matches!(
            state.idempotency.get(&claim.scope).map(|r| &r.progress),
            Some(Progress::InFlight { token, .. }) if *token == claim.token
        );
        if ours {
            state.idempotency.remove(&claim.scope);
        }
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.idempotency.len();
        state
            .idempotency
            .retain(|_, record| record.expires_at > now);
        Ok((before - state.idempotency.len()) as u64)
    }
}

#[async_trait]
impl CreditStore for MemoryStore {
    async fn wallet(&self, organization: OrganizationId) -> Result<Wallet, StoreError> {
        Ok(self.state().wallet(organization))
    }

    async fn grant(&self, entry: LedgerEntry, trail: &Trail) -> Result<LedgerEvent, StoreError> {
        let mut state = self.state();
        let event = state.record(entry);
        state.write_trail(trail, 0);
        Ok(event)
    }

    async fn allocate(
        &self,
        debit: LedgerEntry,
        credit: LedgerEntry,
        trail: &Trail,
        done: Option<PendingCompletion<Wallet>>,
    ) -> Result<Allocation, StoreError> {
        let mut state = self.state();
        if !state.is_open(credit.organization_id) {
            return Ok(Allocation::ChildClosed);
        }
        let available = state.wallet(debit.organization_id).available();
        if available < debit.credits.unsigned_abs() {
            return Ok(Allocation::InsufficientFunds { available });
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        state.record(debit);
        let child = state.record(credit);
        let child_wallet = state.wallet(child.entry.organization_id);
        state.write_trail(trail, 0);
        state.write_completion(done.map(|d| d.resolve(&child_wallet)));
        Ok(Allocation::Applied { child_wallet })
    }

    async fn ledger(
        &self,
        organization: OrganizationId,
        filter: LedgerFilter,
        request: PageRequest,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let state = self.state();
        let events = state
            .ledger
            .iter()
            .filter(|e| e.entry.organization_id == organization && filter.admits(&e.entry));
        Ok(page(
            events,
            |e| (e.entry.created_at, e.entry.id.as_uuid()),
            request,
        ))
    }

    async fn reserve(
        &self,
        reservation: Reservation,
        expiry: JobId,
        month: (Timestamp, Timestamp),
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Reserve, StoreError> {
        let mut state = self.state();
        let Some(organization) = state.organizations.get(&reservation.organization_id) else {
            return Ok(Reserve::Closed);
        };
        if organization.status.kind() == StatusKind::Archived {
            return Ok(Reserve::Closed);
        }
        if state.held_by_kill_switch(reservation.organization_id) {
            return Ok(Reserve::Suspended);
        }
        let mut wallet = state.wallet(reservation.organization_id);
        if wallet.available() < reservation.credits {
            return Ok(Reserve::InsufficientFunds {
                available: wallet.available(),
            });
        }
        let config = state
            .credit_configs
            .get(&reservation.organization_id)
            .copied()
            .unwrap_or_default();
        if let Some(cap) = config.monthly_credit_cap {
            let committed = state.spent_between(reservation.organization_id, month.0, month.1)
                + wallet.reserved;
            if committed + reservation.credits > cap {
                return Ok(Reserve::MonthlyCap { cap, committed });
            }
        }
        state.check_claim(done.as_ref().map(|d| &d.claim))?;
        wallet.reserved += reservation.credits;
        state.wallets.insert(wallet.organization_id, wallet);
        let job = Job {
            id: expiry,
            organization_id: Some(reservation.organization_id),
            kind: EXPIRE_RESERVATION.to_owned(),
            payload: reservation.id.to_string(),
            run_at: reservation.expires_at,
            attempts: 0,
            queue: None,
        };
        state.schedule(job);
        state.reservations.insert(reservation.id, reservation);
        state.write_trail(trail, 0);
        state.write_completion(done);
        Ok(Reserve::Held)
    }

    async fn credit_config(
        &self,
        organization: OrganizationId,
    ) -> Result<CreditConfig, StoreError> {
        Ok(self
            .state()
            .credit_configs
            .get(&organization)
            .copied()
            .unwrap_or_default())
    }

    async fn set_credit_config(
        &self,
        organization: OrganizationId,
        config: CreditConfig,
        trail: &Trail,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.credit_configs.insert(organization, config);
        state.write_trail(trail, 0);
        Ok(())
    }

    async fn find_reservation(&self, id: ReservationId) -> Result<Option<Reservation>, StoreError> {
        Ok(self.state().reservations.get(&id).cloned())
    }

    async fn finish_reservation(
        &self,
        id: ReservationId,
        finish: Finish,
        at: Timestamp,
        usage: LedgerEventId,
        reclaim: Reclaim,
        trail: &Trail,
    ) -> Result<Option<Reservation>, StoreError> {
        let mut state = self.state();
        let Some(reservation) = state.reservations.get(&id).cloned() else {
            return Ok(None);
        };
        if reservation.status != ReservationStatus::Held {
            return Ok(Some(reservation));
        }
        let organization = reservation.organization_id;
        let mut wallet = state.wallet(organization);
        wallet.reserved = wallet.reserved.saturating_sub(reservation.credits);
        state.wallets.insert(organization, wallet);
        let (status, spent) = match finish {
            Finish::Settle { credits } => (ReservationStatus::Settled { at, credits }, credits),
            Finish::Release => (ReservationStatus::Released { at }, 0),
            Finish::Expire => (ReservationStatus::Expired { at }, 0),
        };
        if let Ok(signed) = i64::try_from(spent) {
            if signed > 0 {
                state.record(LedgerEntry {
                    id: usage,
                    organization_id: organization,
                    event_type: LedgerEventType::Usage,
                    credits: -signed,
                    transfer_id: None,
                    reservation_id: Some(id),
                    description: reservation.description.clone(),
                    metadata: Metadata::default(),
                    created_at: at,
                });
            }
        }
        // Reserved at archive time, released now: the rest goes to the parent (API.md §4.9).
        let archived_child = state
            .organizations
            .get(&organization)
            .filter(|org| org.status.kind() == StatusKind::Archived)
            .and_then(|org| org.parent_id);
        let reclaimed = match archived_child {
            Some(parent) => state.move_to_parent(
                organization,
                parent,
                reservation.credits - spent,
                reclaim,
                Some(&reservation),
                at,
            ),
            None => 0,
        };
        state.write_trail(trail, reclaimed);
        let finished = Reservation {
            status,
            ..reservation
        };
        state.reservations.insert(id, finished.clone());
        Ok(Some(finished))
    }

    async fn usage_between(
        &self,
        organization: OrganizationId,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(self.state().spent_between(organization, start, end))
    }
}

#[async_trait]
impl JobQueue for MemoryStore {
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.jobs.contains_key(&job.id) {
            return Err(StoreError::Duplicate(format!("job {}", job.id)));
        }
        state.schedule(job);
        Ok(())
    }

    async fn claim(
        &self,
        kinds: Vec<String>,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut state = self.state();
        // Held jobs that are due are marked, as the PostgreSQL store's parking does, so that
        // their lease after the resume says they waited for it.
        let held: Vec<JobId> = state
            .jobs
            .values()
            .filter(|s| !s.was_held && s.job.run_at <= now)
            .filter(|s| s.claim.is_none_or(|(_, until)| until <= now))
            .filter(|s| {
                s.job
                    .organization_id
                    .is_some_and(|org| state.held_by_kill_switch(org))
            })
            .map(|s| s.job.id)
            .collect();
        for id in held {
            if let Some(scheduled) = state.jobs.get_mut(&id) {
                scheduled.was_held = true;
            }
        }
        let heads = state.queue_heads(now);
        let mut due: Vec<(Timestamp, u64, JobId)> = state
            .jobs
            .values()
            .filter(|s| kinds.contains(&s.job.kind) && s.job.run_at <= now)
            .filter(|s| s.claim.is_none_or(|(_, until)| until <= now))
            .filter(|s| {
                !s.job
                    .organization_id
                    .is_some_and(|org| state.held_by_kill_switch(org))
            })
            .filter(|s| {
                s.job
                    .queue
                    .as_deref()
                    .is_none_or(|queue| heads.get(queue) == Some(&Some((s.job.run_at, s.seq))))
            })
            .map(|s| (s.job.run_at, s.seq, s.job.id))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut leases = Vec::new();
        for (_, _, id) in due {
            let token = Uuid::new_v4();
            if let Some(scheduled) = state.jobs.get_mut(&id) {
                scheduled.claim = Some((token, lease_until));
                scheduled.job.attempts += 1;
                leases.push(Lease {
                    job: scheduled.job.clone(),
                    token,
                    was_held: scheduled.was_held,
                });
            }
        }
        Ok(leases)
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut state = self.state();
        let ours = state
            .jobs
            .get(&lease.job.id)
            .is_some_and(|s| s.claim.is_some_and(|(token, _)| token == lease.token));
        if ours {
            state.jobs.remove(&lease.job.id);
        }
        Ok(())
    }

    async fn retry(&self, lease: &Lease, run_at: Timestamp) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(scheduled) = state.jobs.get_mut(&lease.job.id) {
            if scheduled
                .claim
                .is_some_and(|(token, _)| token == lease.token)
            {
                scheduled.claim = None;
                scheduled.job.run_at = run_at;
                scheduled.was_held = false;
            }
        }
        Ok(())
    }

    async fn pending(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.state().jobs.get(&id).map(|s| s.job.clone()))
    }
}
