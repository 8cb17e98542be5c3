use super::organizations::state_conflict;
use super::own_keys::key_conflict;
use super::recording::By;
use super::ControlPlane;
use crate::api_key::Supersession;
use crate::api_key::{
    ApiKey, KeyEnv, KeyName, KeyStatus, MintedSecret, RateLimitTier, Scope, Scopes,
};
use crate::audit::{AuditData, AuditEventType};
use crate::error::Resource;
use crate::idempotency::Idempotency;
use crate::organization::OrganizationStatus;
use crate::pagination::{Page, PageCursor, PageRequest};
use crate::policy::{self, Principal};
use crate::ports::{KeyInsert, Rotation};
use crate::trail::{EventSubject, Trail};
use crate::validation::FieldError;
use crate::webhooks::EventType;
use crate::{ApiKeyId, DomainError, OrganizationId};

/// A key to mint for a child (API.md §5.2), as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    /// `live` when absent.
    pub env: Option<String>,
}

/// How long a rotated child key keeps working (API.md §5.2).
pub const ROTATION_GRACE: time::Duration = time::Duration::hours(24);

/// A rotation: the new key (with its secret, shown once) and the old key as it now is.
#[derive(Debug)]
pub struct RotatedKey {
    pub new: MintedKey,
    pub previous: ApiKey,
}

/// A new key and its secret, which is shown this once and never again.
#[derive(Debug)]
pub struct MintedKey {
    pub key: ApiKey,
    pub secret: MintedSecret,
}

pub const MAX_SCOPES: usize = 64;

impl ControlPlane {
    pub async fn mint_api_key(
        &self,
        principal: &Principal,
        organization_id: OrganizationId,
        input: NewApiKey,
        idempotency: Option<Idempotency<MintedKey>>,
    ) -> Result<MintedKey, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let (known, unknown): (Vec<_>, Vec<_>) = input
            .scopes
            .iter()
            .map(|s| (s, s.parse::<Scope>()))
            .partition(|(_, p)| p.is_ok());
        let requested: Vec<Scope> = known
            .into_iter()
            .filter_map(|(_, parsed)| parsed.ok())
            .collect();
        // A child key never gets `org:admin`, nor anything the minting key does not hold itself.
        if let Some(&denied) = requested
            .iter()
            .find(|&&scope| scope == Scope::OrgAdmin || !principal.key.scopes.grants(scope))
        {
            return Err(DomainError::ForbiddenScope { required: denied });
        }

        let mut errors = Vec::new();
        let name = KeyName::parse(&input.name).map_err(|e| errors.push(e)).ok();
        if input.scopes.is_empty() || input.scopes.len() > MAX_SCOPES {
            errors.push(FieldError::new(
                "scopes",
                format!("must list 1-{MAX_SCOPES} scopes"),
            ));
        }
        for (raw, _) in unknown {
            errors.push(FieldError::new("scopes", format!("unknown scope {raw:?}")));
        }
        let env = match input.env.as_deref() {
            None => Some(KeyEnv::Live),
            Some(raw) => KeyEnv::parse(raw).or_else(|| {
                errors.push(FieldError::new("env", "must be \"live\" or \"test\""));
                None
            }),
        };
        let (Some(name), Some(env), true) = (name, env, errors.is_empty()) else {
            return Err(DomainError::Validation(errors));
        };

        let organization = self.load_child(principal, organization_id).await?;
        if let OrganizationStatus::Archived { .. } = organization.status {
            return Err(state_conflict(
                &organization,
                "an archived organization cannot get new keys",
            ));
        }
        let secret = self.mint_secret(env);
        let key = ApiKey {
            id: ApiKeyId::from_uuid(self.new_uuid()),
            organization_id: organization.id,
            name,
            env,
            handle: secret.handle.clone(),
            secret_hash: secret.hash.clone(),
            scopes: Scopes::new(requested),
            rate_limit_tier: RateLimitTier::default_for(env),
            status: KeyStatus::Active,
            created_at: self.ports.clock.now(),
            last_used_at: None,
            rotated_at: None,
            superseded: None,
        };
        let minted = MintedKey { key, secret };
        let trail = self.key_created_trail(Some(principal), &minted.key);
        let done = idempotency.map(|i| i.complete(&minted, minted.key.created_at));
        match self
            .ports
            .api_keys
            .insert(&minted.key, &trail, done)
            .await?
        {
            KeyInsert::Inserted => Ok(minted),
            // Archived between our read and the insert: the store refused it atomically.
            KeyInsert::OrganizationClosed => {
                let now_archived = self.load_child(principal, organization_id).await?;
                Err(state_conflict(
                    &now_archived,
                    "an archived organization cannot get new keys",
                ))
            }
        }
    }

    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        organization_id: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let organization = self.load_child(principal, organization_id).await?;
        self.list_keys_of(organization.id, page).await
    }

    pub(super) async fn list_keys_of(
        &self,
        organization: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, DomainError> {
        let rows = self
            .ports
            .api_keys
            .list(organization, page.overfetch())
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |key| PageCursor {
            created_at: key.created_at,
            id: key.id.as_uuid(),
        }))
    }

    /// Revokes a child's key now; revoking a revoked key returns it unchanged.
    pub async fn revoke_api_key(
        &self,
        principal: &Principal,
        organization_id: OrganizationId,
        key_id: ApiKeyId,
        idempotency: Option<Idempotency<ApiKey>>,
    ) -> Result<ApiKey, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let organization = self.load_child(principal, organization_id).await?;
        let not_found = DomainError::NotFound(Resource::ApiKey);
        let key = match self.ports.api_keys.find(key_id).await? {
            Some(key) if key.organization_id == organization.id => key,
            _ => return Err(not_found),
        };
        let now = self.ports.clock.now();
        let revoked = ApiKey {
            status: KeyStatus::Revoked { at: now },
            ..key
        };
        let trail = self.key_revoked_trail(
            Some(principal),
            &revoked,
            AuditEventType::ApiKeyRevoked,
            now,
        );
        let done = idempotency.map(|i| i.pending(now, ApiKey::clone));
        self.ports
            .api_keys
            .revoke(key_id, now, &trail, done)
            .await?
            .ok_or(not_found)
    }

    /// Rotates a child's key (API.md §5.2): a new key with the same name, scopes, env and tier;
    /// the old one keeps working for [`ROTATION_GRACE`], then is revoked.
    pub async fn rotate_child_api_key(
        &self,
        principal: &Principal,
        organization_id: OrganizationId,
        key_id: ApiKeyId,
        idempotency: Option<Idempotency<RotatedKey>>,
    ) -> Result<RotatedKey, DomainError> {
        policy::require_scope(principal, Scope::OrgAdmin)?;
        let organization = self.load_child(principal, organization_id).await?;
        let old = match self.ports.api_keys.find(key_id).await? {
            Some(key) if key.organization_id == organization.id => key,
            _ => return Err(DomainError::NotFound(Resource::ApiKey)),
        };
        policy::ensure_writable(&organization)?;
        let now = self.ports.clock.now();
        if !old.is_usable_at(now) || old.superseded.is_some() {
            return Err(key_conflict(&old, now));
        }
        let secret = self.mint_secret(old.env);
        let new = ApiKey {
            id: ApiKeyId::from_uuid(self.new_uuid()),
            handle: secret.handle.clone(),
            secret_hash: secret.hash.clone(),
            status: KeyStatus::Active,
            created_at: now,
            last_used_at: None,
            rotated_at: None,
            superseded: None,
            ..old.clone()
        };
        let supersession = Supersession {
            by: new.id,
            grace_until: now.plus(ROTATION_GRACE),
        };
        let rotated = RotatedKey {
            new: MintedKey { key: new, secret },
            previous: ApiKey {
                rotated_at: Some(now),
                superseded: Some(supersession),
                ..old.clone()
            },
        };
        let trail = self
            .key_created_trail(Some(principal), &rotated.new.key)
            .with_audit(self.audit_event(
                Some(principal),
                old.organization_id,
                AuditEventType::ApiKeyRotated,
                &AuditData::ApiKey {
                    api_key_id: old.id,
                    replaced_by: Some(rotated.new.key.id),
                },
                now,
            ));
        let done = idempotency.map(|i| i.complete(&rotated, now));
        match self
            .ports
            .api_keys
            .rotate(old.id, supersession, now, &rotated.new.key, &trail, done)
            .await?
        {
            Rotation::Applied => Ok(rotated),
            Rotation::KeyNotRotatable => {
                let current = self.ports.api_keys.find(old.id).await?.unwrap_or(old);
                Err(key_conflict(&current, now))
            }
            Rotation::OrganizationClosed => {
                let now_archived = self.load_child(principal, organization_id).await?;
                Err(state_conflict(
                    &now_archived,
                    "an archived organization cannot get new keys",
                ))
            }
        }
    }

    /// A key minted: audited, and `api_key.created` for webhooks.
    pub(super) fn key_created_trail(&self, by: By<'_>, key: &ApiKey) -> Trail {
        let data = AuditData::ApiKey {
            api_key_id: key.id,
            replaced_by: None,
        };
        Trail::none()
            .with_audit(self.audit_event(
                by,
                key.organization_id,
                AuditEventType::ApiKeyCreated,
                &data,
                key.created_at,
            ))
            .with_event(self.webhook_event(
                EventType::ApiKeyCreated,
                EventSubject::ApiKey(key.clone()),
                None,
                key.created_at,
            ))
    }

    /// A key revoked or killed (`audit_type` says which): `api_key.revoked` for webhooks.
    pub(super) fn key_revoked_trail(
        &self,
        by: By<'_>,
        key: &ApiKey,
        audit_type: AuditEventType,
        at: crate::Timestamp,
    ) -> Trail {
        let data = AuditData::ApiKey {
            api_key_id: key.id,
            replaced_by: None,
        };
        Trail::none()
            .with_audit(self.audit_event(by, key.organization_id, audit_type, &data, at))
            .with_event(self.webhook_event(
                EventType::ApiKeyRevoked,
                EventSubject::ApiKey(key.clone()),
                None,
                at,
            ))
    }

    pub(super) fn mint_secret(&self, env: KeyEnv) -> MintedSecret {
        let mut handle = [0u8; 10];
        let mut secret = [0u8; 32];
        self.ports.random.fill(&mut handle);
        self.ports.random.fill(&mut secret);
        MintedSecret::new(env, handle, secret)
    }
}
