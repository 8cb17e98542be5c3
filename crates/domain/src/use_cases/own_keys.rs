//! The caller's own keys (API.md §5.4): any key with `keys:write` of an organization may kill or
//! rotate any key of the same organization — the leaked-key button.

use super::{ControlPlane, MintedKey};
use crate::api_key::{ApiKey, Scope};
use crate::audit::{AuditData, AuditEventType};
use crate::error::{ConflictSubject, Resource};
use crate::idempotency::Idempotency;
use crate::pagination::{Page, PageRequest};
use crate::policy::{self, Principal};
use crate::trail::Trail;
use crate::{ApiKeyId, DomainError};

impl ControlPlane {
    /// Keys of the acting organization, in every status, newest first.
    pub async fn list_own_api_keys(
        &self,
        principal: &Principal,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, DomainError> {
        policy::require_scope(principal, Scope::KeysRead)?;
        self.list_keys_of(principal.acting_organization().id, page)
            .await
    }

    /// Kills a key of the acting organization: from its next request on it gets the kill switch
    /// (`503`, scope `key`). Killing a key that is no longer usable returns it unchanged.
    pub async fn kill_api_key(
        &self,
        principal: &Principal,
        key_id: ApiKeyId,
        idempotency: Option<Idempotency<ApiKey>>,
    ) -> Result<ApiKey, DomainError> {
        policy::require_scope(principal, Scope::KeysWrite)?;
        let key = self.load_own_key(principal, key_id).await?;
        let now = self.ports.clock.now();
        let killed = ApiKey {
            status: crate::api_key::KeyStatus::Killed { at: now },
            ..key
        };
        let trail =
            self.key_revoked_trail(Some(principal), &killed, AuditEventType::ApiKeyKilled, now);
        let done = idempotency.map(|i| i.pending(now, ApiKey::clone));
        self.ports
            .api_keys
            .kill(killed.id, now, &trail, done)
            .await?
            .ok_or(DomainError::NotFound(Resource::ApiKey))
    }

    /// Replaces a key's secret in place: same id, new handle and secret; the old secret is
    /// refused at once.
    pub async fn rotate_own_api_key(
        &self,
        principal: &Principal,
        key_id: ApiKeyId,
        idempotency: Option<Idempotency<MintedKey>>,
    ) -> Result<MintedKey, DomainError> {
        policy::require_scope(principal, Scope::KeysWrite)?;
        let key = self.load_own_key(principal, key_id).await?;
        let now = self.ports.clock.now();
        if !key.is_usable_at(now) {
            return Err(key_conflict(&key, now));
        }
        let secret = self.mint_secret(key.env);
        let data = AuditData::ApiKey {
            api_key_id: key.id,
            replaced_by: None,
        };
        let trail = Trail::none().with_audit(self.audit_event(
            Some(principal),
            key.organization_id,
            AuditEventType::ApiKeyRotated,
            &data,
            now,
        ));
        // The answer (with the new secret, as a mint's is) is recorded with the change, so a
        // retry replays it rather than rotating once more.
        let minted = secret.clone();
        let done = idempotency.map(|i| {
            i.pending(now, move |key: &ApiKey| MintedKey {
                key: key.clone(),
                secret: minted.clone(),
            })
        });
        let stored = self
            .ports
            .api_keys
            .replace_secret(key.id, &secret.handle, &secret.hash, now, &trail, done)
            .await?
            .ok_or(DomainError::NotFound(Resource::ApiKey))?;
        if stored.handle != secret.handle {
            // Revoked, killed or rotated by someone else between our read and the write.
            return Err(key_conflict(&stored, now));
        }
        Ok(MintedKey {
            key: stored,
            secret,
        })
    }

    /// A key of the acting organization, which must accept writes; else `404` / `409`.
    async fn load_own_key(
        &self,
        principal: &Principal,
        key_id: ApiKeyId,
    ) -> Result<ApiKey, DomainError> {
        let organization = principal.acting_organization();
        policy::ensure_writable(organization)?;
        match self.ports.api_keys.find(key_id).await? {
            Some(key) if key.organization_id == organization.id => Ok(key),
            _ => Err(DomainError::NotFound(Resource::ApiKey)),
        }
    }
}

/// The key's state forbids the change.
pub(super) fn key_conflict(key: &ApiKey, now: crate::Timestamp) -> DomainError {
    let status = match (key.state_at(now), key.superseded) {
        (crate::api_key::KeyState::Usable, Some(_)) => "superseded",
        (crate::api_key::KeyState::Usable, None) => "active",
        _ => "revoked",
    };
    DomainError::Conflict {
        message: format!("the API key is {status}"),
        subject: ConflictSubject::ApiKey { id: key.id, status },
    }
}
