//! What the operator — whoever runs the server — does outside the API (API.md §9).

use super::{ControlPlane, MintedKey};
use crate::api_key::{
    ApiKey, KeyName, KeyStatus, PresentedKey, RateLimitTier, Scope, Scopes, SecretHash,
};
use crate::audit::{AuditData, AuditEventType};
use crate::organization::lifecycle::LifecycleAction;
use crate::organization::StatusKind;
use crate::organization::{Organization, OrganizationName};
use crate::ports::KeyInsert;
use crate::ports::StoreError;
use crate::trail::Trail;
use crate::validation::FieldError;
use crate::{ApiKeyId, DomainError, OrganizationId};
use sha2::{Digest, Sha256};

/// Start-up bootstrap: a top-level organization holding an admin key.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub organization_name: String,
    /// A key string to install (`BOOTSTRAP_ADMIN_KEY`); `None` mints a fresh one.
    pub admin_key: Option<String>,
    pub rate_limit_tier: RateLimitTier,
}

#[derive(Debug)]
pub enum BootstrapOutcome {
    /// The admin key already exists: nothing was done.
    AlreadyInstalled { organization: Organization },
    /// A top-level organization and its admin key were created. `secret` is set when the key was
    /// minted here (it must then be shown to the operator once).
    Created {
        organization: Organization,
        key: Box<ApiKey>,
        secret: Option<String>,
    },
}

const ADMIN_SCOPES: [Scope; 2] = [Scope::AllData, Scope::OrgAdmin];

impl ControlPlane {
    pub async fn bootstrap(&self, request: Bootstrap) -> Result<BootstrapOutcome, DomainError> {
        let name =
            OrganizationName::parse(&request.organization_name).map_err(DomainError::validation)?;
        let Some(raw_key) = request.admin_key else {
            let (organization, minted) =
                self.create_top_level(name, request.rate_limit_tier).await?;
            return Ok(BootstrapOutcome::Created {
                organization,
                secret: Some(minted.secret.reveal().to_owned()),
                key: Box::new(minted.key),
            });
        };
        let presented = PresentedKey::parse(&raw_key).ok_or_else(|| {
            DomainError::validation(FieldError::new(
                "BOOTSTRAP_ADMIN_KEY",
                "must be a key of the form lp_<live|test>_<16 base32 characters>_<43 base64url characters>",
            ))
        })?;
        if let Some(organization) = self.installed_bootstrap(&presented).await? {
            return Ok(BootstrapOutcome::AlreadyInstalled { organization });
        }
        // Several processes may start at once with the same key. The organization's and the
        // key's ids are derived from the key's handle, so they all write the same rows: the
        // first write wins, the others find it installed, and no orphan organization is left.
        let now = self.ports.clock.now();
        let organization = Organization::new_top_level(
            OrganizationId::from_uuid(derived_uuid("bootstrap organization", &presented)),
            name,
            now,
        );
        let trail = self.top_level_created_trail(&organization);
        match self
            .ports
            .organizations
            .insert(&organization, &trail, None)
            .await
        {
            Ok(()) | Err(StoreError::Duplicate(_)) => {}
            Err(other) => return Err(other.into()),
        }
        let key = ApiKey {
            id: ApiKeyId::from_uuid(derived_uuid("bootstrap key", &presented)),
            organization_id: organization.id,
            name: KeyName::parse("bootstrap admin key").map_err(DomainError::validation)?,
            env: presented.env,
            handle: presented.handle.clone(),
            secret_hash: SecretHash::of(presented.secret()),
            scopes: Scopes::new(ADMIN_SCOPES),
            rate_limit_tier: request.rate_limit_tier,
            status: KeyStatus::Active,
            created_at: now,
            last_used_at: None,
            rotated_at: None,
            superseded: None,
        };
        match self.insert_operator_key(&key).await {
            Ok(()) => {
                let stored = self.ports.organizations.find(organization.id).await?;
                Ok(BootstrapOutcome::Created {
                    organization: stored.unwrap_or(organization),
                    key: Box::new(key),
                    secret: None,
                })
            }
            Err(DomainError::Store(StoreError::Duplicate(what))) => {
                match self.installed_bootstrap(&presented).await? {
                    Some(organization) => Ok(BootstrapOutcome::AlreadyInstalled { organization }),
                    None => Err(StoreError::Duplicate(what).into()),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// The organization holding the bootstrap key, if that exact key is installed.
    async fn installed_bootstrap(
        &self,
        presented: &PresentedKey,
    ) -> Result<Option<Organization>, DomainError> {
        let Some(existing) = self
            .ports
            .api_keys
            .find_credentials(&presented.handle)
            .await?
        else {
            return Ok(None);
        };
        if existing.key.env != presented.env
            || !existing.key.secret_hash.matches(presented.secret())
        {
            return Err(DomainError::validation(FieldError::new(
                "BOOTSTRAP_ADMIN_KEY",
                "its handle belongs to another key",
            )));
        }
        Ok(Some(existing.organization))
    }

    /// Creates a top-level organization and mints its first admin key.
    pub async fn create_top_level(
        &self,
        name: OrganizationName,
        rate_limit_tier: RateLimitTier,
    ) -> Result<(Organization, MintedKey), DomainError> {
        let organization = self.insert_top_level(name).await?;
        let secret = self.mint_secret(crate::api_key::KeyEnv::Live);
        let key = ApiKey {
            id: ApiKeyId::from_uuid(self.new_uuid()),
            organization_id: organization.id,
            name: KeyName::parse("admin key").map_err(DomainError::validation)?,
            env: secret.env,
            handle: secret.handle.clone(),
            secret_hash: secret.hash.clone(),
            scopes: Scopes::new(ADMIN_SCOPES),
            rate_limit_tier,
            status: KeyStatus::Active,
            created_at: organization.created_at,
            last_used_at: None,
            rotated_at: None,
            superseded: None,
        };
        self.insert_operator_key(&key).await?;
        Ok((organization, MintedKey { key, secret }))
    }

    /// The platform-level kill switch: suspends a top-level organization, which cuts off its own
    /// keys and its children's (API.md §9).
    pub async fn suspend_top_level(&self, id: OrganizationId) -> Result<Organization, DomainError> {
        self.change_status(
            async || self.load_top_level(id).await,
            LifecycleAction::Suspend,
            None,
            None,
            None,
        )
        .await
    }

    pub async fn resume_top_level(&self, id: OrganizationId) -> Result<Organization, DomainError> {
        self.change_status(
            async || self.load_top_level(id).await,
            LifecycleAction::Resume,
            None,
            None,
            None,
        )
        .await
    }

    /// Sets a key's rate-limit tier (API.md §1.7: the operator's CLI).
    pub async fn set_rate_limit_tier(
        &self,
        key: ApiKeyId,
        tier: RateLimitTier,
    ) -> Result<ApiKey, DomainError> {
        self.ports
            .api_keys
            .set_rate_limit_tier(key, tier)
            .await?
            .ok_or(DomainError::NotFound(crate::error::Resource::ApiKey))
    }

    async fn load_top_level(&self, id: OrganizationId) -> Result<Organization, DomainError> {
        let found = self.ports.organizations.find(id).await?;
        found
            .filter(Organization::is_top_level)
            .ok_or(DomainError::NotFound(crate::error::Resource::Organization))
    }

    /// The operator created a top-level organization: audited, no webhook (no endpoint can exist
    /// yet).
    fn top_level_created_trail(&self, organization: &Organization) -> Trail {
        let data = AuditData::Transition {
            from: None,
            to: StatusKind::Active,
            reason: None,
        };
        Trail::none().with_audit(self.audit_event(
            None,
            organization.id,
            AuditEventType::OrganizationCreated,
            &data,
            organization.created_at,
        ))
    }

    async fn insert_top_level(&self, name: OrganizationName) -> Result<Organization, DomainError> {
        let now = self.ports.clock.now();
        let organization =
            Organization::new_top_level(OrganizationId::from_uuid(self.new_uuid()), name, now);
        let trail = self.top_level_created_trail(&organization);
        self.ports
            .organizations
            .insert(&organization, &trail, None)
            .await?;
        Ok(organization)
    }

    async fn insert_operator_key(&self, key: &ApiKey) -> Result<(), DomainError> {
        let trail = self.key_created_trail(None, key);
        match self.ports.api_keys.insert(key, &trail, None).await? {
            KeyInsert::Inserted => Ok(()),
            KeyInsert::OrganizationClosed => {
                Err(DomainError::Store(crate::ports::StoreError::Internal(
                    "the organization just created is not open".to_owned(),
                )))
            }
        }
    }
}

/// A v4-shaped UUID determined by the bootstrap key's handle and a purpose.
fn derived_uuid(purpose: &str, key: &PresentedKey) -> uuid::Uuid {
    let digest = Sha256::digest(format!("{purpose}:{}", key.handle.as_str()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
