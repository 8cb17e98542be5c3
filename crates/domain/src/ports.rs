//! The ports: what the domain needs from the outside world, written as contracts.
//!
//! Every store adapter (the embedded in-memory store, PostgreSQL) implements these traits and is
//! held to them by one port-contract test suite. Each method says, under `# Errors`, what an
//! adapter must return in which case. All store errors are [`StoreError`]; a store never panics
//! on anything a caller or the database can cause.
//!
//! Atomicity is part of the contract: a method that changes several things (archive: status and
//! keys) applies all of it or none, and the conditional methods are compare-and-set against a
//! [`Revision`], so concurrent callers on any number of processes cannot both win.
//!
//! Every write that is a material action takes a [`Trail`] (audit events, webhook events) and
//! writes it in the same atomic change as the effect, only when the effect is applied; for each
//! webhook event it also creates the deliveries to every endpoint that wants it, each scheduled
//! as a [`crate::webhooks::DELIVER`] job bound to the endpoint's owner.

use async_trait::async_trait;

use crate::api_key::{ApiKey, KeyHandle, RateLimitTier, SecretHash, Supersession};
use crate::audit::{AuditEvent, AuditFilter};
use crate::credits::{
    CreditConfig, Finish, LedgerEntry, LedgerEvent, LedgerEventId, LedgerFilter, Reservation,
    ReservationId, TransferId, Wallet,
};
use crate::idempotency::{
    Claim, ClaimOutcome, Completion, Fingerprint, IdempotencyScope, PendingCompletion,
};
use crate::jobs::{Job, JobId, Lease};
use crate::organization::{Organization, Revision, StatusKind};
use crate::pagination::PageRequest;
use crate::policy::Credentials;
use crate::trail::{EventDraft, Trail};
use crate::webhooks::{
    AttemptRecord, Delivery, DeliveryId, EndpointId, EventId, PendingAttempt, WebhookEndpoint,
    WebhookUrl,
};
use crate::{ApiKeyId, OrganizationId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now (connection refused, pool timeout). Retryable.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A row with the same unique identity already exists.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// Anything else the store reports. Not retryable; the message is for logs only.
    #[error("store failure: {0}")]
    Internal(String),
}

/// Outcome of a compare-and-set write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Applied,
    /// The stored revision was no longer the expected one; nothing was written.
    Stale,
}

/// Outcome of [`OrganizationStore::archive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    Applied {
        revoked_keys: u64,
        reclaimed_credits: u64,
    },
    Stale,
}

/// How an archive sweeps the child's unreserved credits back to its parent: the ids of the two
/// `reclaim` ledger events and of the transfer, written only if there is anything to sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reclaim {
    pub child_event: LedgerEventId,
    pub parent_event: LedgerEventId,
    pub transfer_id: TransferId,
}

/// Outcome of [`CreditStore::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    Held,
    /// The organization's available balance is smaller than the amount; nothing was written.
    InsufficientFunds {
        available: u64,
    },
    /// The organization or its parent is suspended (the kill switch): nothing was written.
    Suspended,
    /// Spending `credits` more this month would pass the organization's monthly cap.
    MonthlyCap {
        cap: u64,
        committed: u64,
    },
    /// The organization is archived or missing: nothing was written.
    Closed,
}

/// Outcome of [`CreditStore::allocate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Both events were written; the child's wallet as it is right after.
    Applied { child_wallet: Wallet },
    /// The parent's available balance is smaller than the amount; nothing moved.
    InsufficientFunds { available: u64 },
    /// The child is archived (or missing); nothing moved.
    ChildClosed,
}

/// Outcome of [`ApiKeyStore::rotate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Applied,
    /// The old key is no longer usable, or already superseded; nothing was written.
    KeyNotRotatable,
    /// The organization is archived; nothing was written.
    OrganizationClosed,
}

/// Outcome of [`ApiKeyStore::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInsert {
    Inserted,
    /// The key's organization is archived (or does not exist); nothing was written.
    OrganizationClosed,
}

#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Stores a new organization.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if an organization with that id exists.
    async fn insert(
        &self,
        org: &Organization,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<(), StoreError>;

    /// The organization with this id, in any status.
    async fn find(&self, id: OrganizationId) -> Result<Option<Organization>, StoreError>;

    /// Direct children of `parent`, newest first by `created_at`, then by id descending, starting
    /// strictly after `page.after`, at most `page.limit` of them (none for a limit of 0); only
    /// those in `status` if given.
    async fn list_children(
        &self,
        parent: OrganizationId,
        status: Option<StatusKind>,
        page: PageRequest,
    ) -> Result<Vec<Organization>, StoreError>;

    /// Replaces the stored organization by `org` if the stored revision is `expected`
    /// (`org.revision` is then the next one); otherwise — or if there is no such organization —
    /// writes nothing and answers [`Write::Stale`]. `parent_id` and `created_at` never change.
    ///
    /// # Errors
    /// [`StoreError::Internal`] if `org` is archived: archiving goes through [`Self::archive`].
    async fn update(
        &self,
        org: &Organization,
        expected: Revision,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Write, StoreError>;

    /// Stores the archived `org` if the stored revision is `expected`, and in the same atomic
    /// change revokes, at the archive instant, every key of the organization that is still
    /// usable — including keys inserted concurrently — and moves its unreserved credits to its
    /// parent's wallet (two `reclaim` events, as `reclaim` names them, at the archive instant;
    /// none when there is nothing to move), and cancels its scheduled jobs — except the expiry
    /// of reservations still held, which must still end — and its webhook deliveries still
    /// pending, which become `canceled`. The trail is written resolved with the amount swept
    /// ([`Trail::resolved`]), and `done`, rendered from the [`Archive::Applied`] figures, with it.
    /// Otherwise (or if there is no such organization) writes nothing: [`Archive::Stale`].
    ///
    /// # Errors
    /// [`StoreError::Internal`] if `org` is not archived; [`StoreError::Unavailable`] (and
    /// nothing written) if `done`'s claim was lost.
    async fn archive(
        &self,
        org: &Organization,
        expected: Revision,
        reclaim: Reclaim,
        trail: &Trail,
        done: Option<PendingCompletion<Archive>>,
    ) -> Result<Archive, StoreError>;
}

#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key, unless its organization is archived or missing
    /// ([`KeyInsert::OrganizationClosed`]); a suspended organization still gets keys (its parent
    /// manages it, API.md §3). Atomic with respect to
    /// [`OrganizationStore::archive`]: a key is either inserted before the archive (and revoked by
    /// it) or refused.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id or the handle is taken.
    async fn insert(
        &self,
        key: &ApiKey,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<KeyInsert, StoreError>;

    async fn find(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError>;

    /// Keys of `organization`, in any status, in the order of
    /// [`OrganizationStore::list_children`].
    async fn list(
        &self,
        organization: OrganizationId,
        page: PageRequest,
    ) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key at `at` if it is usable at `at` (see [`ApiKey::state_at`]), writing the
    /// trail and `done` (rendered from the revoked key) with it, and returns it as stored
    /// afterwards; any other key is returned unchanged (and nothing written). `None` if there is
    /// no such key.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (and nothing written) if `done`'s claim was lost.
    async fn revoke(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Kills the key at `at` if it is usable at `at` (the leaked-key button, API.md §5.4), and
    /// returns it as stored afterwards; any other key is returned unchanged. `None` if there is
    /// no such key. The trail and `done` (rendered from the killed key) are written only with the
    /// kill.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (and nothing written) if `done`'s claim was lost.
    async fn kill(
        &self,
        id: ApiKeyId,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// The rotation of a child key (API.md §5.2), in one atomic change: `old` gets
    /// `rotated_at = at` and `superseded = Some(supersession)`, and `new` is inserted — only if
    /// `old` is usable at `at` and not yet superseded ([`Rotation::KeyNotRotatable`]) and its
    /// organization is not archived ([`Rotation::OrganizationClosed`]). Atomic with respect to
    /// [`Self::revoke`], [`Self::kill`] and [`OrganizationStore::archive`].
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the new key's id or handle is taken.
    async fn rotate(
        &self,
        old: ApiKeyId,
        supersession: Supersession,
        at: Timestamp,
        new: &ApiKey,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Rotation, StoreError>;

    /// Replaces the handle and secret hash of a key usable at `at`, keeping its id, and sets
    /// `rotated_at = at` (the in-place rotation of API.md §5.4): the old secret stops working at
    /// once. Returns the key as stored afterwards, changed or not (compare its handle); `None` if
    /// there is no such key. The trail, and `done` rendered from the changed key, are written
    /// only with the change.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the handle is taken; [`StoreError::Unavailable`] (and nothing
    /// written) if `done`'s claim was lost.
    async fn replace_secret(
        &self,
        id: ApiKeyId,
        handle: &KeyHandle,
        hash: &SecretHash,
        at: Timestamp,
        trail: &Trail,
        done: Option<PendingCompletion<ApiKey>>,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Sets a key's rate-limit tier (an operator action). `None` if there is no such key.
    async fn set_rate_limit_tier(
        &self,
        id: ApiKeyId,
        tier: RateLimitTier,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Raises each key's `last_used_at` to the given instant; never lowers it. Unknown ids are
    /// ignored. Called in batches, so authentication costs no write per request.
    async fn record_last_used(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError>;

    /// How many keys of `organization` are usable at `now`.
    async fn count_active(
        &self,
        organization: OrganizationId,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// The key with this handle, with its organization and that organization's parent, read
    /// together so the answer reflects one moment: the authentication path. Must read the
    /// current state of the store, never a copy older than the last committed change, so a
    /// suspension is seen by every process at once (API.md §3 "Immediacy").
    async fn find_credentials(&self, handle: &KeyHandle)
        -> Result<Option<Credentials>, StoreError>;
}

/// Idempotency records (API.md §1.6). Completing a claim together with an effect is done by the
/// write methods of the other store ports (their `done` argument), in the effect's atomic change.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `scope`'s key for a request with `fingerprint` at `now`, atomically:
    /// - no record, an expired one (`expires_at <= now`), or an abandoned claim (in flight past
    ///   its lease): the key is claimed, with a fresh token and a lease until `lease_until` →
    ///   [`ClaimOutcome::Claimed`];
    /// - a completed record with the same fingerprint → [`ClaimOutcome::Replay`];
    /// - a claim in flight with the same fingerprint → [`ClaimOutcome::InFlight`];
    /// - any record with another fingerprint → [`ClaimOutcome::Mismatch`].
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        fingerprint: Fingerprint,
        token: uuid::Uuid,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Completes a claim that is still in flight under its token; a claim already completed (by
    /// the effect's own change) or lost is left as it is.
    async fn complete(&self, completion: &Completion) -> Result<(), StoreError>;

    /// Drops a claim still in flight under its token, so the request can be retried for real.
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Deletes records that expired before `now` (scheduled cleanup); returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Wallets and the ledger (API.md §6). For every wallet the sum of its ledger events equals its
/// balance, and `reserved <= balance`, after every method, under any concurrency.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// The organization's wallet; one that never held credits is empty.
    async fn wallet(&self, organization: OrganizationId) -> Result<Wallet, StoreError>;

    /// Adds `entry.credits` (> 0) to the entry's organization: the operator's grant. Returns the
    /// event with the balance it left.
    async fn grant(&self, entry: LedgerEntry, trail: &Trail) -> Result<LedgerEvent, StoreError>;

    /// Moves credits from a parent to a child in one atomic change: `debit` (negative) on the
    /// parent's wallet and `credit` (positive, the same amount) on the child's — only if the
    /// parent's available balance covers it ([`Allocation::InsufficientFunds`]) and the child is
    /// not archived ([`Allocation::ChildClosed`]). Concurrent allocations never overdraw; an
    /// allocation and an archive of the child are serialized. `done` is rendered from the
    /// child's wallet after the allocation and written with it.
    async fn allocate(
        &self,
        debit: LedgerEntry,
        credit: LedgerEntry,
        trail: &Trail,
        done: Option<PendingCompletion<Wallet>>,
    ) -> Result<Allocation, StoreError>;

    /// The organization's ledger events admitted by `filter`, newest first by `created_at` then
    /// id, strictly after `page.after`, at most `page.limit`.
    async fn ledger(
        &self,
        organization: OrganizationId,
        filter: LedgerFilter,
        page: PageRequest,
    ) -> Result<Vec<LedgerEvent>, StoreError>;

    /// Holds `reservation.credits` of its organization's available balance, in one atomic change
    /// with respect to allocations, archive and the organization's (and its parent's) status:
    /// refused while either is suspended ([`Reserve::Suspended`]) or the organization is
    /// archived ([`Reserve::Closed`]), or when the available balance is too small. With a monthly
    /// cap set, also refused ([`Reserve::MonthlyCap`]) when what the organization spent in
    /// `month` plus what it holds reserved plus this reservation would pass the cap.
    /// The reservation's expiry is scheduled in the same change: a job `expiry` of kind
    /// [`crate::jobs::EXPIRE_RESERVATION`], bound to the organization, due at `expires_at`.
    async fn reserve(
        &self,
        reservation: Reservation,
        expiry: JobId,
        month: (Timestamp, Timestamp),
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Reserve, StoreError>;

    /// The organization's spend controls; all off if never set.
    async fn credit_config(&self, organization: OrganizationId)
        -> Result<CreditConfig, StoreError>;

    async fn set_credit_config(
        &self,
        organization: OrganizationId,
        config: CreditConfig,
        trail: &Trail,
    ) -> Result<(), StoreError>;

    async fn find_reservation(&self, id: ReservationId) -> Result<Option<Reservation>, StoreError>;

    /// Ends a held reservation at `at`, atomically: its credits leave `reserved`; a settle spends
    /// `credits` of them with `usage` (a `usage` ledger event, skipped for 0); and if the
    /// organization is archived by now, the rest goes to its parent as two `reclaim` events named
    /// by `reclaim`, with the trail resolved for that amount. A reservation already ended is
    /// returned as it is, and no trail written. `None` if unknown.
    async fn finish_reservation(
        &self,
        id: ReservationId,
        finish: Finish,
        at: Timestamp,
        usage: LedgerEventId,
        reclaim: Reclaim,
        trail: &Trail,
    ) -> Result<Option<Reservation>, StoreError>;

    /// Credits the organization spent (its `usage` events) in `[start, end)`.
    async fn usage_between(
        &self,
        organization: OrganizationId,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<u64, StoreError>;
}

/// The durable job queue of API.md §8 (see [`crate::jobs`]).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Stores a pending job.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id is taken.
    async fn enqueue(&self, job: Job) -> Result<(), StoreError>;

    /// Claims up to `limit` jobs of `kinds` due at `now` — pending, or claimed under a lease that ran out —
    /// oldest `run_at` first (then in the order they were scheduled), skipping jobs of a
    /// suspended organization or of a child of a suspended one (held), jobs whose queue has an
    /// earlier job still pending or claimed (see [`Job::queue`]), and never a job another claim
    /// holds. Each claimed job gets a fresh
    /// token, a lease until `lease_until`, and one more attempt. A held job that a claim meets
    /// due (of any kind) is marked, and its later lease says so ([`Lease::was_held`]) until the
    /// job is scheduled again ([`JobQueue::retry`], or a delivery's retry by
    /// [`WebhookStore::finish_attempt`]).
    async fn claim(
        &self,
        kinds: Vec<String>,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Marks a claimed job done, if the claim is still this lease's.
    async fn complete(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Puts a claimed job back to run at `run_at`, if the claim is still this lease's.
    async fn retry(&self, lease: &Lease, run_at: Timestamp) -> Result<(), StoreError>;

    /// The job with this id, in any state: `None` once it is done or cancelled.
    async fn pending(&self, id: JobId) -> Result<Option<Job>, StoreError>;
}

/// Outcome of [`WebhookStore::insert_endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointInsert {
    Inserted,
    /// The owner is archived (or does not exist); nothing was written.
    OrganizationClosed,
}

/// The audit log (API.md §9). Events are written by the other ports' writes, in their trails;
/// the store refuses to change or delete them.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// The organization's events admitted by `filter`, newest first by `occurred_at` then id,
    /// strictly after `page.after`, at most `page.limit`.
    async fn list(
        &self,
        organization: OrganizationId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Writes `event` — a request refused by the kill switch — unless its key already has a
    /// refusal recorded after `since`; atomically, so concurrent refusals of one key within the
    /// window write one event. Answers whether it was written.
    async fn record_refusal(
        &self,
        event: &AuditEvent,
        since: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// Webhook endpoints and deliveries (API.md §7). Events and their deliveries are written by the
/// trails of the other writes.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint with its trail, unless its owner is archived or missing.
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<EndpointInsert, StoreError>;

    async fn find_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// The organization's endpoints, in the order of [`OrganizationStore::list_children`].
    async fn list_endpoints(
        &self,
        organization: OrganizationId,
        page: PageRequest,
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Replaces the stored endpoint (url, events, description, status, failure count, updated
    /// at) with its trail, if its stored status is still `read_status` (a worker may have paused
    /// it meanwhile); `false` (nothing written) if it changed or no longer exists.
    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        read_status: crate::webhooks::EndpointStatus,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<bool, StoreError>;

    /// Deletes the endpoint with its trail and `done`; its deliveries still pending become
    /// `canceled`. `false` (and nothing written) if there was no such endpoint.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (and nothing written) if `done`'s claim was lost.
    async fn delete_endpoint(
        &self,
        id: EndpointId,
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<bool, StoreError>;

    /// The endpoint's deliveries, newest first (`created_at`, then id), strictly after
    /// `page.after`, at most `page.limit`; each with `held` as of now.
    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        page: PageRequest,
    ) -> Result<Vec<Delivery>, StoreError>;

    async fn find_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// The body of a recorded event.
    async fn event_body(&self, id: EventId) -> Result<Option<String>, StoreError>;

    /// Writes a trail of its own (a test ping, a replay): its events go to their target.
    async fn record(&self, trail: &Trail, done: Option<Completion>) -> Result<(), StoreError>;

    /// What an attempt of this delivery needs; `None` if the delivery or its endpoint is gone.
    async fn pending_attempt(&self, id: DeliveryId) -> Result<Option<PendingAttempt>, StoreError>;

    /// Records an attempt (or a cancellation) in one atomic change, if `lease` still holds the
    /// delivery's job: the delivery's status, attempts and last error; the endpoint's failure
    /// count (reset by a success, raised by a failed attempt, and the endpoint `auto_paused`
    /// when it reaches [`crate::webhooks::AUTO_PAUSE_AFTER`]); and the job, done or put back
    /// for `record.next_attempt_at`. Answers whether it was recorded.
    async fn finish_attempt(
        &self,
        lease: &Lease,
        record: &AttemptRecord,
    ) -> Result<bool, StoreError>;
}

/// A signed delivery on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub url: WebhookUrl,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// What became of an outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver answered, with this status, within the delivery timeout.
    Answered { status: u16 },
    /// No answer: refused address, connection error, timeout. `error` is safe to show.
    NoAnswer { error: String },
}

/// The outbound side of webhooks: the HTTP client, and the policy of where it may send.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Whether deliveries may go to `url` (https only, no loopback, private or link-local
    /// address, unless the server runs in its local-development mode); the reason if not.
    async fn vet(&self, url: &WebhookUrl) -> Result<(), String>;

    /// POSTs the request — vetting its address again first — within
    /// [`crate::webhooks::DELIVERY_TIMEOUT`].
    async fn send(&self, request: OutboundRequest) -> SendOutcome;
}

/// The wire form of what the domain records for others to read: webhook event bodies and audit
/// data, as the API shows them. A port so the domain knows no JSON; the HTTP adapter renders.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Presenter: Send + Sync {
    /// The JSON body of a webhook event.
    fn event_body(&self, event: &EventDraft) -> String;

    /// The body of a replay of `original`: the same event under a new id and time, `replayOf`
    /// naming the original.
    fn replay_body(&self, original: &str, id: EventId, created_at: Timestamp) -> String;

    /// The JSON object of an audit event's `data`.
    fn audit_data(&self, data: &crate::audit::AuditData) -> String;
}

/// The current instant, truncated to microseconds. A port so tests can control time.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Cryptographically secure random bytes (the OS CSPRNG in production): ids and key secrets.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait RandomSource: Send + Sync {
    fn fill(&self, buffer: &mut [u8]);
}
