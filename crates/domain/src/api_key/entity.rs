use std::fmt;
use std::str::FromStr;

use super::{KeyEnv, KeyHandle, Scopes, SecretHash};
use crate::validation::FieldError;
use crate::{ApiKeyId, OrganizationId, Timestamp};

/// A key's name: 1–120 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub const MAX_CHARS: usize = 120;

    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be 1-{} characters after trimming", Self::MAX_CHARS),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Requests per minute a key may make, by endpoint class (API.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitTier {
    Standard,
    Pilot,
    Partner,
    Sandbox,
    /// No limit: the operator's own tooling.
    Unlimited,
}

impl RateLimitTier {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Pilot => "pilot",
            Self::Partner => "partner",
            Self::Sandbox => "sandbox",
            Self::Unlimited => "unlimited",
        }
    }

    /// The tier a newly minted child key starts on.
    pub fn default_for(env: KeyEnv) -> Self {
        match env {
            KeyEnv::Live => Self::Standard,
            KeyEnv::Test => Self::Sandbox,
        }
    }
}

impl fmt::Display for RateLimitTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RateLimitTier {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Standard,
            Self::Pilot,
            Self::Partner,
            Self::Sandbox,
            Self::Unlimited,
        ]
        .into_iter()
        .find(|tier| tier.as_str() == s)
        .ok_or(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Revoked { at: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrganizationId,
    pub name: KeyName,
    pub env: KeyEnv,
    pub handle: KeyHandle,
    pub secret_hash: SecretHash,
    pub scopes: Scopes,
    pub rate_limit_tier: RateLimitTier,
    pub status: KeyStatus,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl ApiKey {
    /// The part of the key that is safe to show: `lp_<env>_<handle>`.
    pub fn prefix(&self) -> String {
        format!("lp_{}_{}", self.env.as_str(), self.handle.as_str())
    }

    pub fn is_active(&self) -> bool {
        self.status == KeyStatus::Active
    }

    pub fn revoked_at(&self) -> Option<Timestamp> {
        match self.status {
            KeyStatus::Revoked { at } => Some(at),
            KeyStatus::Active => None,
        }
    }
}
