//! Claiming, completing and releasing idempotency keys (API.md §1.6); see
//! [`crate::idempotency`] for how the guarantee is built.

use super::ControlPlane;
use crate::idempotency::{
    Claim, ClaimOutcome, Completion, Fingerprint, IdempotencyScope, StoredResponse, CLAIM_LEASE,
    REPLAY_WINDOW,
};
use crate::DomainError;

impl ControlPlane {
    /// Claims the key for this request, or finds what an earlier request with it left.
    pub async fn claim_idempotency_key(
        &self,
        scope: IdempotencyScope,
        fingerprint: Fingerprint,
    ) -> Result<ClaimOutcome, DomainError> {
        let now = self.ports.clock.now();
        let token = self.new_uuid();
        Ok(self
            .ports
            .idempotency
            .claim(&scope, fingerprint, token, now, now.plus(CLAIM_LEASE))
            .await?)
    }

    /// Records the answer of a request, unless its effect already recorded it.
    pub async fn complete_idempotency_key(
        &self,
        claim: Claim,
        response: StoredResponse,
    ) -> Result<(), DomainError> {
        let completion = Completion {
            claim,
            response,
            expires_at: self.ports.clock.now().plus(REPLAY_WINDOW),
        };
        Ok(self.ports.idempotency.complete(&completion).await?)
    }

    /// Gives the key back after a failure on our side, so the retry runs for real.
    pub async fn release_idempotency_key(&self, claim: &Claim) -> Result<(), DomainError> {
        Ok(self.ports.idempotency.release(claim).await?)
    }

    /// Deletes the records past their replay window (the scheduled cleanup).
    pub async fn purge_idempotency_records(&self) -> Result<u64, DomainError> {
        let now = self.ports.clock.now();
        Ok(self.ports.idempotency.purge_expired(now).await?)
    }
}
