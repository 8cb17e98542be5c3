//! Row structs and their translation to and from domain values. The domain's constructors
//! re-validate what is read, so a row the domain would not accept becomes `StoreError::Internal`
//! instead of a panic or a silently wrong value.

use std::collections::BTreeMap;

use diesel::prelude::{AsChangeset, Insertable, Queryable, Selectable};
use domain::api_key::{
    ApiKey, KeyEnv, KeyHandle, KeyName, KeyStatus, RateLimitTier, Scope, Scopes, SecretHash,
    Supersession,
};
use domain::organization::{
    BillingEmail, Metadata, Organization, OrganizationName, OrganizationStatus, Revision,
};
use domain::ports::StoreError;
use domain::{ApiKeyId, OrganizationId, Timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::corrupt;
use crate::schema::{api_keys, organizations};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg))]
pub(crate) struct OrganizationRow {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub status: String,
    pub suspended_at: Option<OffsetDateTime>,
    pub archived_at: Option<OffsetDateTime>,
    pub metadata: serde_json::Value,
    pub billing_email: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub revision: i64,
}

/// What an update or an archive replaces: everything but the identity (id, parent, creation).
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = organizations, treat_none_as_null = true)]
pub(crate) struct OrganizationChanges {
    pub name: String,
    pub status: String,
    pub suspended_at: Option<OffsetDateTime>,
    pub archived_at: Option<OffsetDateTime>,
    pub metadata: serde_json::Value,
    pub billing_email: Option<String>,
    pub updated_at: OffsetDateTime,
    pub revision: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ApiKeyRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub env: String,
    pub handle: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub rate_limit_tier: String,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub killed_at: Option<OffsetDateTime>,
    pub rotated_at: Option<OffsetDateTime>,
    pub superseded_by: Option<Uuid>,
    pub grace_until: Option<OffsetDateTime>,
}

pub(crate) fn revision_to_db(revision: Revision) -> Result<i64, StoreError> {
    i64::try_from(revision.value())
        .map_err(|_| StoreError::Internal(format!("revision {} is out of range", revision.value())))
}

fn timestamp(value: OffsetDateTime) -> Timestamp {
    Timestamp::from_offset_datetime(value)
}

impl OrganizationRow {
    pub fn from_domain(org: &Organization) -> Result<Self, StoreError> {
        let changes = OrganizationChanges::from_domain(org)?;
        Ok(Self {
            id: org.id.as_uuid(),
            parent_id: org.parent_id.map(|id| id.as_uuid()),
            name: changes.name,
            status: changes.status,
            suspended_at: changes.suspended_at,
            archived_at: changes.archived_at,
            metadata: changes.metadata,
            billing_email: changes.billing_email,
            created_at: org.created_at.as_offset_datetime(),
            updated_at: changes.updated_at,
            revision: changes.revision,
        })
    }

    pub fn into_domain(self) -> Result<Organization, StoreError> {
        let status = match (self.status.as_str(), self.suspended_at, self.archived_at) {
            ("active", None, None) => OrganizationStatus::Active,
            ("suspended", Some(since), None) => OrganizationStatus::Suspended {
                since: timestamp(since),
            },
            ("archived", None, Some(at)) => OrganizationStatus::Archived { at: timestamp(at) },
            (status, _, _) => return Err(corrupt("organization status", status)),
        };
        let pairs: BTreeMap<String, String> = serde_json::from_value(self.metadata)
            .map_err(|e| corrupt("organization metadata", e))?;
        let billing_email = self
            .billing_email
            .as_deref()
            .map(BillingEmail::parse)
            .transpose()
            .map_err(|e| corrupt("billing email", e.message))?;
        let revision = u64::try_from(self.revision)
            .map_err(|_| corrupt("organization revision", self.revision))?;
        Ok(Organization {
            id: OrganizationId::from_uuid(self.id),
            parent_id: self.parent_id.map(OrganizationId::from_uuid),
            name: OrganizationName::parse(&self.name)
                .map_err(|e| corrupt("organization name", e.message))?,
            status,
            metadata: Metadata::from_stored(pairs),
            billing_email,
            created_at: timestamp(self.created_at),
            updated_at: timestamp(self.updated_at),
            revision: Revision::new(revision),
        })
    }
}

impl OrganizationChanges {
    pub fn from_domain(org: &Organization) -> Result<Self, StoreError> {
        let metadata = serde_json::to_value(org.metadata.pairs())
            .map_err(|e| StoreError::Internal(format!("cannot encode metadata: {e}")))?;
        Ok(Self {
            name: org.name.as_str().to_owned(),
            status: org.status.kind().as_str().to_owned(),
            suspended_at: org.status.suspended_since().map(|t| t.as_offset_datetime()),
            archived_at: org.status.archived_at().map(|t| t.as_offset_datetime()),
            metadata,
            billing_email: org.billing_email.as_ref().map(|e| e.as_str().to_owned()),
            updated_at: org.updated_at.as_offset_datetime(),
            revision: revision_to_db(org.revision)?,
        })
    }
}

impl ApiKeyRow {
    pub fn from_domain(key: &ApiKey) -> Self {
        Self {
            id: key.id.as_uuid(),
            organization_id: key.organization_id.as_uuid(),
            name: key.name.as_str().to_owned(),
            env: key.env.as_str().to_owned(),
            handle: key.handle.as_str().to_owned(),
            secret_hash: key.secret_hash.as_bytes().to_vec(),
            scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            rate_limit_tier: key.rate_limit_tier.as_str().to_owned(),
            revoked_at: match key.status {
                KeyStatus::Revoked { at } => Some(at.as_offset_datetime()),
                _ => None,
            },
            created_at: key.created_at.as_offset_datetime(),
            last_used_at: key.last_used_at.map(|t| t.as_offset_datetime()),
            killed_at: match key.status {
                KeyStatus::Killed { at } => Some(at.as_offset_datetime()),
                _ => None,
            },
            rotated_at: key.rotated_at.map(|t| t.as_offset_datetime()),
            superseded_by: key.superseded.map(|s| s.by.as_uuid()),
            grace_until: key.superseded.map(|s| s.grace_until.as_offset_datetime()),
        }
    }

    pub fn into_domain(self) -> Result<ApiKey, StoreError> {
        let hash: [u8; 32] = self
            .secret_hash
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("secret hash", "not 32 bytes"))?;
        let scopes = self
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>().map_err(|()| corrupt("scope", s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(self.id),
            organization_id: OrganizationId::from_uuid(self.organization_id),
            name: KeyName::parse(&self.name).map_err(|e| corrupt("key name", e.message))?,
            env: KeyEnv::parse(&self.env).ok_or_else(|| corrupt("key env", &self.env))?,
            handle: KeyHandle::parse(&self.handle)
                .ok_or_else(|| corrupt("key handle", &self.handle))?,
            secret_hash: SecretHash::from_bytes(hash),
            scopes: Scopes::new(scopes),
            rate_limit_tier: self
                .rate_limit_tier
                .parse::<RateLimitTier>()
                .map_err(|()| corrupt("rate-limit tier", &self.rate_limit_tier))?,
            status: match (self.revoked_at, self.killed_at) {
                (None, None) => KeyStatus::Active,
                (Some(at), None) => KeyStatus::Revoked { at: timestamp(at) },
                (None, Some(at)) => KeyStatus::Killed { at: timestamp(at) },
                (Some(_), Some(_)) => return Err(corrupt("key status", "both revoked and killed")),
            },
            created_at: timestamp(self.created_at),
            last_used_at: self.last_used_at.map(timestamp),
            rotated_at: self.rotated_at.map(timestamp),
            superseded: match (self.superseded_by, self.grace_until) {
                (None, None) => None,
                (Some(by), Some(until)) => Some(Supersession {
                    by: ApiKeyId::from_uuid(by),
                    grace_until: timestamp(until),
                }),
                _ => {
                    return Err(corrupt(
                        "key supersession",
                        "superseded_by without grace_until",
                    ))
                }
            },
        })
    }
}
