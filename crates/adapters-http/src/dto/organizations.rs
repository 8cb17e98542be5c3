use std::collections::BTreeMap;

use domain::credits::CreditConfig;
use domain::organization::{MetadataPatch, Organization};
use domain::use_cases::{ArchiveReport, NewOrganization, OrganizationPatch, OrganizationSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{nullable, present};
use crate::wire_time;

/// The organization object (API.md §4.1).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDto {
    #[schema(example = "org_d4e5f6a7-8b9c-4d0e-9f2a-3b4c5d6e7f80")]
    pub id: String,
    pub parent_organization_id: Option<String>,
    pub name: String,
    /// `active`, `suspended` or `archived`.
    #[schema(example = "suspended")]
    pub status: &'static str,
    pub metadata: BTreeMap<String, String>,
    pub billing_email: Option<String>,
    #[schema(example = "2026-06-02T13:00:00.000000+00:00")]
    pub archived_at: Option<String>,
    #[schema(example = "2026-06-01T14:30:00.000000+00:00")]
    pub created_at: String,
    #[schema(example = "2026-06-02T11:00:00.000000+00:00")]
    pub updated_at: String,
}

impl From<&Organization> for OrganizationDto {
    fn from(org: &Organization) -> Self {
        Self {
            id: org.id.to_string(),
            parent_organization_id: org.parent_id.map(|id| id.to_string()),
            name: org.name.as_str().to_owned(),
            status: org.status.kind().as_str(),
            metadata: org.metadata.pairs().clone(),
            billing_email: org.billing_email.as_ref().map(|e| e.as_str().to_owned()),
            archived_at: org.status.archived_at().map(wire_time::organization),
            created_at: wire_time::organization(org.created_at),
            updated_at: wire_time::organization(org.updated_at),
        }
    }
}

/// `GET /v1/organizations/:orgId`: the organization plus its figures (API.md §4.5).
#[derive(Serialize, ToSchema)]
pub struct OrganizationWithSummaryDto {
    #[serde(flatten)]
    pub organization: OrganizationDto,
    pub summary: SummaryDto,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDto {
    pub balance: u64,
    pub available: u64,
    pub reserved_credits: u64,
    pub active_api_keys: u64,
    pub credit_config: CreditConfigDto,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditConfigDto {
    pub monthly_credit_cap: Option<u64>,
    pub refill_threshold: Option<u64>,
    pub refill_amount: Option<u64>,
    pub auto_refill_enabled: bool,
}

impl From<&CreditConfig> for CreditConfigDto {
    fn from(config: &CreditConfig) -> Self {
        Self {
            monthly_credit_cap: config.monthly_credit_cap,
            refill_threshold: config.refill_threshold,
            refill_amount: config.refill_amount,
            auto_refill_enabled: config.auto_refill_enabled,
        }
    }
}

impl From<&OrganizationSummary> for OrganizationWithSummaryDto {
    fn from(summary: &OrganizationSummary) -> Self {
        Self {
            organization: OrganizationDto::from(&summary.organization),
            summary: SummaryDto {
                balance: summary.wallet.balance,
                available: summary.wallet.available(),
                reserved_credits: summary.wallet.reserved,
                active_api_keys: summary.active_api_keys,
                credit_config: CreditConfigDto::from(&summary.credit_config),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationList {
    pub items: Vec<OrganizationDto>,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `DELETE /v1/organizations/:orgId` (API.md §4.9).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedOrganizationDto {
    pub id: String,
    #[schema(example = "archived")]
    pub status: &'static str,
    #[schema(example = "2026-06-02T13:00:00.000000+00:00")]
    pub archived_at: Option<String>,
    pub reclaimed_credits: u64,
    pub revoked_api_keys: u64,
}

impl From<&ArchiveReport> for ArchivedOrganizationDto {
    fn from(report: &ArchiveReport) -> Self {
        let org = &report.organization;
        Self {
            id: org.id.to_string(),
            status: org.status.kind().as_str(),
            archived_at: org.status.archived_at().map(wire_time::organization),
            reclaimed_credits: report.reclaimed_credits,
            revoked_api_keys: report.revoked_api_keys,
        }
    }
}

/// `POST /v1/organizations` (API.md §4.3).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOrganizationBody {
    /// 1–128 characters after trimming; not blank, no NUL.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub name: String,
    /// String → string; keys 1–40 characters, values ≤ 500, ≤ 50 keys, ≤ 16 KiB as JSON, no NUL;
    /// a `""` value stores nothing.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::metadata)]
    pub metadata: BTreeMap<String, String>,
    /// `null` or absent: none.
    #[schema(schema_with = crate::openapi::billing_email)]
    pub billing_email: Option<String>,
}

impl From<CreateOrganizationBody> for NewOrganization {
    fn from(body: CreateOrganizationBody) -> Self {
        Self {
            name: body.name,
            metadata: body.metadata,
            billing_email: body.billing_email,
        }
    }
}

/// `PATCH /v1/organizations/:orgId` (API.md §4.6): only the fields sent change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchOrganizationBody {
    /// 1–128 characters after trimming; not nullable.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 128, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub name: Option<String>,
    /// A string sets it, `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::openapi::billing_email)]
    pub billing_email: Option<Option<String>>,
    /// Merged key by key: a sent key is set, `""` removes it; `null` clears all.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::openapi::nullable_metadata)]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
}

impl From<PatchOrganizationBody> for OrganizationPatch {
    fn from(body: PatchOrganizationBody) -> Self {
        Self {
            name: body.name,
            billing_email: body.billing_email,
            metadata: body.metadata.map(|sent| match sent {
                None => MetadataPatch::Clear,
                Some(pairs) => MetadataPatch::Merge(pairs),
            }),
        }
    }
}

/// Optional body of `POST /v1/organizations/:orgId/suspend`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// At most 500 characters, no NUL; recorded with the suspension.
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub reason: Option<String>,
}
