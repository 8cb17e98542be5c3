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
        crate::validation::no_nul("name", input)?;
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

/// What was done to a key, as stored. Whether it still admits requests also depends on time
/// (a rotated key's grace window): see [`ApiKey::state_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    /// Revoked by its parent, by archiving its organization, or replaced by in-place rotation.
    Revoked {
        at: Timestamp,
    },
    /// Killed by a key of its own organization (the leaked-key button): refused with the kill
    /// switch, not with 401, so the holder learns why.
    Killed {
        at: Timestamp,
    },
}

/// A child key rotated by its parent: it keeps working until `grace_until`, then is revoked —
/// decided at read time, so no sweeper is needed for correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supersession {
    pub by: ApiKeyId,
    pub grace_until: Timestamp,
}

/// Whether a key admits requests at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Usable,
    Revoked { at: Timestamp },
    Killed { at: Timestamp },
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
    /// When its secret was last replaced, or when it was superseded by a new key.
    pub rotated_at: Option<Timestamp>,
    pub superseded: Option<Supersession>,
}

impl ApiKey {
    /// The part of the key that is safe to show: `lp_<env>_<handle>`.
    pub fn prefix(&self) -> String {
        format!("lp_{}_{}", self.env.as_str(), self.handle.as_str())
    }

    /// Whether the key admits requests at `now`: a superseded key stops at its grace's end.
    pub fn state_at(&self, now: Timestamp) -> KeyState {
        match (self.status, self.superseded) {
            (KeyStatus::Revoked { at }, _) => KeyState::Revoked { at },
            (KeyStatus::Killed { at }, _) => KeyState::Killed { at },
            (KeyStatus::Active, Some(s)) if now >= s.grace_until => {
                KeyState::Revoked { at: s.grace_until }
            }
            (KeyStatus::Active, _) => KeyState::Usable,
        }
    }

    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.state_at(now) == KeyState::Usable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key::MintedSecret;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros).unwrap()
    }

    fn key(status: KeyStatus, superseded: Option<Supersession>) -> ApiKey {
        let secret = MintedSecret::new(KeyEnv::Live, [1; 10], [2; 32]);
        ApiKey {
            id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(1)),
            organization_id: OrganizationId::from_uuid(uuid::Uuid::from_u128(2)),
            name: KeyName::parse("k").unwrap(),
            env: KeyEnv::Live,
            handle: secret.handle.clone(),
            secret_hash: secret.hash.clone(),
            scopes: Scopes::default(),
            rate_limit_tier: RateLimitTier::Standard,
            status,
            created_at: at(0),
            last_used_at: None,
            rotated_at: None,
            superseded,
        }
    }

    #[test]
    fn a_superseded_key_works_until_its_grace_ends_exactly() {
        let grace = Supersession {
            by: ApiKeyId::from_uuid(uuid::Uuid::from_u128(3)),
            grace_until: at(100),
        };
        let rotated = key(KeyStatus::Active, Some(grace));
        assert_eq!(rotated.state_at(at(99)), KeyState::Usable);
        assert_eq!(rotated.state_at(at(100)), KeyState::Revoked { at: at(100) });
        assert_eq!(
            key(KeyStatus::Killed { at: at(5) }, None).state_at(at(6)),
            KeyState::Killed { at: at(5) }
        );
        assert_eq!(
            key(KeyStatus::Revoked { at: at(5) }, Some(grace)).state_at(at(6)),
            KeyState::Revoked { at: at(5) }
        );
        assert_eq!(
            key(KeyStatus::Active, None).state_at(at(1_000_000)),
            KeyState::Usable
        );
    }
}
