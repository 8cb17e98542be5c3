use domain::api_key::{ApiKey, KeyState};
use domain::use_cases::{MintedKey, NewApiKey, RotatedKey};
use domain::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire_time;

/// The key object (API.md §5.1). The secret is never part of it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    #[schema(example = "key_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub id: String,
    pub organization_id: String,
    pub name: String,
    #[schema(example = "lp_live_ABCDEFGHJKMNPQRS")]
    pub prefix: String,
    /// `live` or `test`.
    pub env: &'static str,
    pub scopes: Vec<&'static str>,
    pub rate_limit_tier: &'static str,
    /// `active` or `revoked`.
    pub status: &'static str,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub rotated_at: Option<String>,
    pub revoked_at: Option<String>,
    pub grace_until: Option<String>,
    pub superseded_by: Option<String>,
}

impl ApiKeyDto {
    /// The key as it stands at `now`: a rotated key reads `revoked` from the end of its grace.
    pub fn at(key: &ApiKey, now: Timestamp) -> Self {
        let revoked_at = match key.state_at(now) {
            KeyState::Usable => None,
            KeyState::Revoked { at } | KeyState::Killed { at } => Some(at),
        };
        Self {
            id: key.id.to_string(),
            organization_id: key.organization_id.to_string(),
            name: key.name.as_str().to_owned(),
            prefix: key.prefix(),
            env: key.env.as_str(),
            scopes: key.scopes.iter().map(|s| s.as_str()).collect(),
            rate_limit_tier: key.rate_limit_tier.as_str(),
            status: if revoked_at.is_none() {
                "active"
            } else {
                "revoked"
            },
            created_at: wire_time::other(key.created_at),
            last_used_at: key.last_used_at.map(wire_time::other),
            rotated_at: key.rotated_at.map(wire_time::other),
            revoked_at: revoked_at.map(wire_time::other),
            grace_until: key.superseded.map(|s| wire_time::other(s.grace_until)),
            superseded_by: key.superseded.map(|s| s.by.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyDto>,
    pub next_cursor: Option<String>,
}

/// `201` of minting: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MintedApiKeyDto {
    pub api_key: ApiKeyDto,
    #[schema(example = "lp_live_ABCDEFGHJKMNPQRS_…")]
    pub secret: String,
}

impl MintedApiKeyDto {
    pub fn at(minted: &MintedKey, now: Timestamp) -> Self {
        Self {
            api_key: ApiKeyDto::at(&minted.key, now),
            secret: minted.secret.reveal().to_owned(),
        }
    }
}

/// `201` of rotating a child's key: the new key with its secret, and the old one in its grace.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedApiKeyDto {
    pub api_key: ApiKeyDto,
    pub secret: String,
    pub previous: ApiKeyDto,
}

impl RotatedApiKeyDto {
    pub fn at(rotated: &RotatedKey, now: Timestamp) -> Self {
        Self {
            api_key: ApiKeyDto::at(&rotated.new.key, now),
            secret: rotated.new.secret.reveal().to_owned(),
            previous: ApiKeyDto::at(&rotated.previous, now),
        }
    }
}

/// `200` of killing a key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KilledApiKeyDto {
    pub api_key: ApiKeyDto,
    pub killed: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedApiKeyDto {
    pub api_key: ApiKeyDto,
    pub deleted: bool,
}

/// `POST /v1/organizations/:orgId/api-keys` (API.md §5.2).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyBody {
    /// 1–120 characters after trimming; not blank, no NUL.
    #[schema(
        min_length = 1,
        max_length = 120,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub name: String,
    /// 1–64 scope names, each held by the calling key; never `org:admin` (`403`).
    #[schema(schema_with = crate::openapi::scopes)]
    pub scopes: Vec<String>,
    /// `live` (default) or `test`; not nullable.
    #[serde(default, deserialize_with = "crate::body::present")]
    #[schema(schema_with = crate::openapi::key_env)]
    pub env: Option<String>,
}

impl From<CreateApiKeyBody> for NewApiKey {
    fn from(body: CreateApiKeyBody) -> Self {
        Self {
            name: body.name,
            scopes: body.scopes,
            env: body.env,
        }
    }
}
