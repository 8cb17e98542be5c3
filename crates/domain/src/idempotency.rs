//! Idempotency keys (API.md §1.6): a retried request with the same key replays the first answer
//! instead of running again.
//!
//! A request claims its key first (a record "in flight", with a lease); the store then writes the
//! final response in the same atomic change as the request's effect, so a crash can leave neither
//! an effect without its record nor a record without its effect. A request that changed nothing
//! (a refusal, a no-op) completes its record on its own. A failure on our side (5xx) releases the
//! claim, so the retry runs for real.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::validation::FieldError;
use crate::{ApiKeyId, Timestamp};

/// How long a completed record is replayed.
pub const REPLAY_WINDOW: time::Duration = time::Duration::hours(24);
/// How long a claim may stay in flight before it is considered abandoned (its request died) and
/// another request may claim the key. Longer than any request may take.
pub const CLAIM_LEASE: time::Duration = time::Duration::seconds(60);

/// The `Idempotency-Key` header: a UUID, in any letter case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Uuid);

impl IdempotencyKey {
    pub const HEADER: &'static str = "Idempotency-Key";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim();
        if raw.len() != 36 {
            return Err(FieldError::new(Self::HEADER, "must be a UUID"));
        }
        Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| FieldError::new(Self::HEADER, "must be a UUID"))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// Where a key is unique: per API key, HTTP method and route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub api_key: ApiKeyId,
    pub method: String,
    pub route: String,
    pub key: IdempotencyKey,
}

/// What identifies "the same request": a hash of its path and body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(path: &str, body: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        Self(hasher.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// An answer as sent: replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A request's hold on its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub scope: IdempotencyScope,
    /// Proves the hold is still this request's when it completes.
    pub token: Uuid,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is ours: run the request.
    Claimed(Claim),
    /// The same request already ran: answer this, run nothing.
    Replay(StoredResponse),
    /// The same request is running right now.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

/// A claim's final response, written with the effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub claim: Claim,
    pub response: StoredResponse,
    pub expires_at: Timestamp,
}

/// How a caller renders a use case's outcome as the response it sends.
pub type Render<T> = Arc<dyn Fn(&T) -> StoredResponse + Send + Sync>;

/// What a use case needs to complete a claim with its effect: the claim, and how the caller
/// renders the use case's outcome as the response it will send.
pub struct Idempotency<T> {
    pub claim: Claim,
    pub render: Render<T>,
}

impl<T: 'static> Idempotency<T> {
    pub fn complete(&self, outcome: &T, now: Timestamp) -> Completion {
        Completion {
            claim: self.claim.clone(),
            response: (self.render)(outcome),
            expires_at: now.plus(REPLAY_WINDOW),
        }
    }
}

/// A completion whose response depends on what the store finds while it writes the effect (the
/// balance an allocation leaves): the store renders it under its lock or in its transaction.
pub struct PendingCompletion<V> {
    pub claim: Claim,
    pub expires_at: Timestamp,
    pub render: Box<dyn Fn(&V) -> StoredResponse + Send + Sync>,
}

impl<V> PendingCompletion<V> {
    pub fn resolve(&self, value: &V) -> Completion {
        Completion {
            claim: self.claim.clone(),
            response: (self.render)(value),
            expires_at: self.expires_at,
        }
    }
}

impl<V> fmt::Debug for PendingCompletion<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCompletion")
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

impl<T: 'static> Idempotency<T> {
    /// A completion rendered later from a `V` the store finds, through `outcome`.
    pub fn pending<V>(
        &self,
        now: Timestamp,
        outcome: impl Fn(&V) -> T + Send + Sync + 'static,
    ) -> PendingCompletion<V> {
        let render = self.render.clone();
        PendingCompletion {
            claim: self.claim.clone(),
            expires_at: now.plus(REPLAY_WINDOW),
            render: Box::new(move |value| render(&outcome(value))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uuids_in_any_case() {
        let id = "9B2D5C1E-0C4F-4E8A-9F2B-3C4D5E6F7A8B";
        assert_eq!(
            IdempotencyKey::parse(id).unwrap(),
            IdempotencyKey::parse(&id.to_lowercase()).unwrap()
        );
        for bad in [
            "",
            "nope",
            "9b2d5c1e0c4f4e8a9f2b3c4d5e6f7a8b",
            "{9b2d5c1e-0c4f-4e8a-9f2b-3c4d5e6f7a8b}",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_tell_path_and_body_apart() {
        assert_eq!(Fingerprint::of("/a", b"{}"), Fingerprint::of("/a", b"{}"));
        assert_ne!(Fingerprint::of("/a", b"{}"), Fingerprint::of("/b", b"{}"));
        assert_ne!(Fingerprint::of("/a", b"{}"), Fingerprint::of("/a", b"{ }"));
        assert_ne!(Fingerprint::of("/a", b""), Fingerprint::of("/", b"a"));
    }
}
