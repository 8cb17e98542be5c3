use std::collections::BTreeMap;

use domain::credits::{LedgerEvent, Reservation, ReservationStatus};
use domain::use_cases::{AllocationReport, CreditsView, NewAllocation, NewReservation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire_time;

/// A wallet (API.md §6.1).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditsDto {
    pub organization_id: String,
    pub balance: u64,
    pub available: u64,
    pub reserved_credits: u64,
    pub used_this_period: u64,
    pub current_period: PeriodDto,
}

#[derive(Serialize, ToSchema)]
pub struct PeriodDto {
    #[schema(example = "2026-06-01T00:00:00.000Z")]
    pub start: String,
    #[schema(example = "2026-07-01T00:00:00.000Z")]
    pub end: String,
}

impl From<&CreditsView> for CreditsDto {
    fn from(view: &CreditsView) -> Self {
        Self {
            organization_id: view.wallet.organization_id.to_string(),
            balance: view.wallet.balance,
            available: view.wallet.available(),
            reserved_credits: view.wallet.reserved,
            used_this_period: view.used_this_period,
            current_period: PeriodDto {
                start: wire_time::other(view.period_start),
                end: wire_time::other(view.period_end),
            },
        }
    }
}

/// `POST /v1/organizations/:orgId/credits/allocate` (API.md §6.2).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateBody {
    /// An integer from 1 to 2^52.
    #[serde(deserialize_with = "crate::body::integer")]
    #[schema(minimum = 1, maximum = 4_503_599_627_370_496_i64)]
    pub credits: i64,
    /// At most 500 characters, no NUL.
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// Bounds of an organization's metadata (API.md §4.3).
    #[serde(default)]
    #[schema(schema_with = crate::openapi::metadata)]
    pub metadata: BTreeMap<String, String>,
}

impl From<AllocateBody> for NewAllocation {
    fn from(body: AllocateBody) -> Self {
        Self {
            credits: body.credits,
            description: body.description,
            metadata: body.metadata,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationDto {
    #[schema(example = "txn_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub id: String,
    pub allocated: u64,
    #[schema(example = "2026-06-03T18:14:02.187Z")]
    pub created: String,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The child's balance after.
    pub balance: u64,
    /// The child's available credits after.
    pub available: u64,
    /// `true` when this answer is the replay of an earlier request with the same key.
    pub replayed: bool,
}

impl From<&AllocationReport> for AllocationDto {
    fn from(report: &AllocationReport) -> Self {
        Self {
            id: report.transfer_id.to_string(),
            allocated: report.allocated,
            created: wire_time::other(report.created_at),
            description: report.description.clone(),
            metadata: report.metadata.pairs().clone(),
            balance: report.child_wallet.balance,
            available: report.child_wallet.available(),
            replayed: false,
        }
    }
}

/// A ledger event (API.md §6.3). Credits into the wallet are positive, out of it negative.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEventDto {
    #[schema(example = "evt_01HXZ9G7KMV2QX8Y1S5RJW3B7T")]
    pub event_id: String,
    /// grant, allocation, usage, reclaim or adjustment.
    pub event_type: &'static str,
    pub credits: i64,
    pub balance_after: u64,
    /// The reservation whose settling spent these credits (`usage`), or whose release by an
    /// archived organization returned them to the parent (`reclaim`); otherwise null.
    #[schema(example = "rsv_6f1c2b1e-8d4a-4f43-9b57-1f0a3c5d7e91")]
    pub reservation_id: Option<String>,
    pub transfer_id: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
}

impl From<&LedgerEvent> for LedgerEventDto {
    fn from(event: &LedgerEvent) -> Self {
        let entry = &event.entry;
        Self {
            event_id: entry.id.to_string(),
            event_type: entry.event_type.as_str(),
            credits: entry.credits,
            balance_after: event.balance_after,
            reservation_id: entry.reservation_id.map(|r| r.to_string()),
            transfer_id: entry.transfer_id.map(|t| t.to_string()),
            description: entry.description.clone(),
            metadata: entry.metadata.pairs().clone(),
            created_at: wire_time::other(entry.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerList {
    pub items: Vec<LedgerEventDto>,
    pub next_cursor: Option<String>,
}

/// A reservation (API.md §6.4).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationDto {
    #[schema(example = "rsv_5b0e6a4e-3c1f-4f6b-9a53-7d2f1c0e8b11")]
    pub id: String,
    pub organization_id: String,
    pub credits: u64,
    /// held, settled, released or expired.
    pub status: &'static str,
    /// What a settle spent; `null` unless settled.
    pub settled_credits: Option<u64>,
    pub expires_at: String,
    pub created_at: String,
}

impl From<&Reservation> for ReservationDto {
    fn from(r: &Reservation) -> Self {
        Self {
            id: r.id.to_string(),
            organization_id: r.organization_id.to_string(),
            credits: r.credits,
            status: r.status.as_str(),
            settled_credits: match r.status {
                ReservationStatus::Settled { credits, .. } => Some(credits),
                _ => None,
            },
            expires_at: wire_time::other(r.expires_at),
            created_at: wire_time::other(r.created_at),
        }
    }
}

/// `POST /v1/credits/reservations`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// An integer from 1 to 2^52.
    #[serde(deserialize_with = "crate::body::integer")]
    #[schema(minimum = 1, maximum = 4_503_599_627_370_496_i64)]
    pub credits: i64,
    /// At most 500 characters, no NUL.
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
}

impl From<ReserveBody> for NewReservation {
    fn from(body: ReserveBody) -> Self {
        Self {
            credits: body.credits,
            description: body.description,
        }
    }
}

/// `POST /v1/credits/reservations/:id/settle`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleBody {
    /// What the work spent: 0 to the reserved credits.
    #[serde(deserialize_with = "crate::body::integer")]
    #[schema(minimum = 0, maximum = 4_503_599_627_370_496_i64)]
    pub credits: i64,
}

/// `GET`/`PATCH /v1/organizations/:orgId/credit-config` (API.md §6.5).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditConfigView {
    pub organization_id: String,
    pub config: super::CreditConfigDto,
    pub balance: u64,
    pub available: u64,
}

impl CreditConfigView {
    pub fn of(config: &domain::credits::CreditConfig, wallet: &domain::credits::Wallet) -> Self {
        Self {
            organization_id: wallet.organization_id.to_string(),
            config: super::CreditConfigDto::from(config),
            balance: wallet.balance,
            available: wallet.available(),
        }
    }
}

/// Each value an integer or `null` (off); omitted = unchanged. After the patch is merged with the
/// stored config, `refillThreshold` and `refillAmount` are both set or both null, and
/// `autoRefillEnabled: true` needs both (`422` otherwise).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchCreditConfigBody {
    /// `null` turns it off; an integer from 0 to 2^52 sets it.
    #[serde(default, deserialize_with = "crate::body::nullable_integer")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4_503_599_627_370_496_i64)]
    pub monthly_credit_cap: Option<Option<i64>>,
    /// `null` turns it off; an integer from 0 to 2^52 sets it.
    #[serde(default, deserialize_with = "crate::body::nullable_integer")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4_503_599_627_370_496_i64)]
    pub refill_threshold: Option<Option<i64>>,
    /// `null` turns it off; an integer from 1 to 2^52 sets it.
    #[serde(default, deserialize_with = "crate::body::nullable_integer")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_503_599_627_370_496_i64)]
    pub refill_amount: Option<Option<i64>>,
    /// Not nullable.
    #[serde(default, deserialize_with = "crate::body::present")]
    #[schema(value_type = bool)]
    pub auto_refill_enabled: Option<bool>,
}

impl From<PatchCreditConfigBody> for domain::credits::CreditConfigPatch {
    fn from(body: PatchCreditConfigBody) -> Self {
        Self {
            monthly_credit_cap: body.monthly_credit_cap,
            refill_threshold: body.refill_threshold,
            refill_amount: body.refill_amount,
            auto_refill_enabled: body.auto_refill_enabled,
        }
    }
}
