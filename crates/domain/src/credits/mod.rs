//! Credits (API.md §6): every organization's wallet and its append-only ledger. Credits are whole
//! numbers; a wallet's balance is the sum of its ledger, and what is available is the balance
//! less what is reserved for work in flight.

use std::fmt;
use std::str::FromStr;

use crate::organization::Metadata;
use crate::validation::FieldError;
use crate::{OrganizationId, Timestamp};

/// A strictly positive number of credits: what is granted, allocated or reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credits(u64);

impl Credits {
    /// The largest amount one operation may move: far beyond any real wallet, and small enough
    /// that sums of many never overflow a signed 64-bit column.
    pub const MAX: u64 = 1 << 52;

    pub fn new(amount: i64, field: &str) -> Result<Self, FieldError> {
        u64::try_from(amount)
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
            .map(Self)
            .ok_or_else(|| {
                FieldError::new(field, format!("must be an integer from 1 to {}", Self::MAX))
            })
    }

    pub fn get(&self) -> u64 {
        self.0
    }

    /// As a ledger amount: into the wallet (+) or out of it (−).
    pub fn signed(&self, direction: Direction) -> i64 {
        // At most 2^52: always fits.
        let amount = i64::try_from(self.0).unwrap_or(i64::MAX);
        match direction {
            Direction::In => amount,
            Direction::Out => -amount,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// An organization's credits: what it holds, and how much of it is held for work in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wallet {
    pub organization_id: OrganizationId,
    pub balance: u64,
    pub reserved: u64,
}

impl Wallet {
    pub fn empty(organization_id: OrganizationId) -> Self {
        Self {
            organization_id,
            balance: 0,
            reserved: 0,
        }
    }

    /// `balance − reserved`, never negative.
    pub fn available(&self) -> u64 {
        self.balance.saturating_sub(self.reserved)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerEventType {
    /// The operator funded a top-level organization.
    Grant,
    /// Credits moved from a parent to a child (both sides).
    Allocation,
    /// Work spent credits.
    Usage,
    /// An archived child's unreserved credits went back to its parent (both sides).
    Reclaim,
    Adjustment,
}

impl LedgerEventType {
    pub const ALL: [LedgerEventType; 5] = [
        Self::Grant,
        Self::Allocation,
        Self::Usage,
        Self::Reclaim,
        Self::Adjustment,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Allocation => "allocation",
            Self::Usage => "usage",
            Self::Reclaim => "reclaim",
            Self::Adjustment => "adjustment",
        }
    }
}

impl FromStr for LedgerEventType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or(())
    }
}

impl fmt::Display for LedgerEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::ids::ulid_id!(
    /// A ledger event's id: a ULID (time-ordered), shown as `evt_<ULID>`.
    LedgerEventId,
    "evt_"
);

crate::ids::prefixed_id!(
    /// A transfer between two wallets (an allocation, a reclaim): `txn_<uuid>`.
    TransferId,
    "txn_"
);

/// A ledger event as a use case writes it; the store adds the balance it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: LedgerEventId,
    pub organization_id: OrganizationId,
    pub event_type: LedgerEventType,
    /// Into the wallet positive, out of it negative.
    pub credits: i64,
    pub transfer_id: Option<TransferId>,
    /// The reservation whose ending wrote it: its `usage`, or the `reclaim` of what an archived
    /// organization's reservation released. `None` for everything else.
    pub reservation_id: Option<ReservationId>,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub created_at: Timestamp,
}

/// A ledger event as recorded: append-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEvent {
    pub entry: LedgerEntry,
    /// The wallet's balance right after this event.
    pub balance_after: u64,
}

/// Which ledger events a listing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerFilter {
    pub event_type: Option<LedgerEventType>,
    /// Inclusive bounds on `created_at`.
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl LedgerFilter {
    pub fn admits(&self, entry: &LedgerEntry) -> bool {
        self.event_type.is_none_or(|t| t == entry.event_type)
            && self.since.is_none_or(|since| entry.created_at >= since)
            && self.until.is_none_or(|until| entry.created_at <= until)
    }
}

/// The calendar month (UTC) an instant falls in: `[start, end)`.
pub fn month_of(at: Timestamp) -> (Timestamp, Timestamp) {
    let date = at.as_offset_datetime().date();
    let start = date.replace_day(1).unwrap_or(date).midnight().assume_utc();
    let (year, month) = match date.month() {
        time::Month::December => (date.year() + 1, time::Month::January),
        other => (date.year(), other.next()),
    };
    let end = time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(start);
    (
        Timestamp::from_offset_datetime(start),
        Timestamp::from_offset_datetime(end),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn credits_are_positive_and_bounded() {
        assert_eq!(Credits::new(5, "credits").unwrap().get(), 5);
        for bad in [0, -1, i64::MAX] {
            assert!(Credits::new(bad, "credits").is_err(), "{bad}");
        }
        assert_eq!(Credits::new(7, "c").unwrap().signed(Direction::Out), -7);
    }

    #[test]
    fn ledger_ids_are_time_ordered_ulids() {
        let at = |t| Timestamp::from_offset_datetime(t);
        let early = LedgerEventId::new(at(datetime!(2026-06-01 00:00 UTC)), [0xff; 10]);
        let late = LedgerEventId::new(at(datetime!(2026-06-01 00:00:00.001 UTC)), [0; 10]);
        assert!(early < late);
        let shown = early.to_string();
        assert!(shown.starts_with("evt_") && shown.len() == 30, "{shown}");
    }

    #[test]
    fn months_are_calendar_months_in_utc() {
        let t = Timestamp::from_offset_datetime(datetime!(2026-12-15 10:00 UTC));
        let (start, end) = month_of(t);
        assert_eq!(start.as_offset_datetime(), datetime!(2026-12-01 00:00 UTC));
        assert_eq!(end.as_offset_datetime(), datetime!(2027-01-01 00:00 UTC));
    }

    #[test]
    fn available_never_goes_negative() {
        let id = OrganizationId::from_uuid(uuid::Uuid::nil());
        let wallet = Wallet {
            organization_id: id,
            balance: 5,
            reserved: 9,
        };
        assert_eq!(wallet.available(), 0);
    }
}

crate::ids::prefixed_id!(
    /// Credits held for work in flight: `rsv_<uuid>`.
    ReservationId,
    "rsv_"
);

/// How long a reservation is held before scheduled work releases it (API.md §6.4).
pub const RESERVATION_TTL: time::Duration = time::Duration::hours(1);

/// Where a reservation is: held, or finished one of three ways (terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Held,
    /// `credits` of it were spent (a `usage` event); the rest was released.
    Settled {
        at: Timestamp,
        credits: u64,
    },
    Released {
        at: Timestamp,
    },
    Expired {
        at: Timestamp,
    },
}

impl ReservationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Settled { .. } => "settled",
            Self::Released { .. } => "released",
            Self::Expired { .. } => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub organization_id: OrganizationId,
    pub credits: u64,
    pub status: ReservationStatus,
    pub description: Option<String>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// How a held reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Spend `credits` (0 ≤ credits ≤ reserved) and release the rest.
    Settle {
        credits: u64,
    },
    Release,
    Expire,
}

/// Spend controls of an organization (API.md §6.5): all off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditConfig {
    /// Most credits it may spend (and hold reserved) in a calendar month.
    pub monthly_credit_cap: Option<u64>,
    /// When `available` drops below this, `refill_amount` moves from the parent.
    pub refill_threshold: Option<u64>,
    pub refill_amount: Option<u64>,
    pub auto_refill_enabled: bool,
}

impl CreditConfig {
    /// The refill to make for a wallet, if auto-refill is on and `available` is below threshold.
    pub fn refill_for(&self, wallet: &Wallet) -> Option<u64> {
        match (
            self.auto_refill_enabled,
            self.refill_threshold,
            self.refill_amount,
        ) {
            (true, Some(threshold), Some(amount))
                if wallet.available() < threshold && amount > 0 =>
            {
                Some(amount)
            }
            _ => None,
        }
    }
}

/// A change to spend controls: `None` leaves a value, `Some(None)` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditConfigPatch {
    pub monthly_credit_cap: Option<Option<i64>>,
    pub refill_threshold: Option<Option<i64>>,
    pub refill_amount: Option<Option<i64>>,
    pub auto_refill_enabled: Option<bool>,
}

impl CreditConfigPatch {
    /// What can be checked without the stored config, so that it is answered before the
    /// organization is looked up (API.md §1.2: 422 before 404): every number sent is in range,
    /// a refill pair sent whole is set or cleared together, and auto-refill is not enabled by a
    /// patch that clears a refill value. The rest depends on the stored config:
    /// [`CreditConfig::patched`] checks it (and these again).
    pub fn check_values(&self) -> Result<(), Vec<FieldError>> {
        let mut errors: Vec<FieldError> = [
            ("monthlyCreditCap", self.monthly_credit_cap, 0),
            ("refillThreshold", self.refill_threshold, 0),
            ("refillAmount", self.refill_amount, 1),
        ]
        .into_iter()
        .filter_map(|(field, sent, min)| out_of_range(field, sent.flatten()?, min))
        .collect();
        if let (Some(threshold), Some(amount)) = (self.refill_threshold, self.refill_amount) {
            if threshold.is_some() != amount.is_some() {
                errors.push(refill_pair_split());
            }
        }
        let clears_refill = self.refill_threshold == Some(None) || self.refill_amount == Some(None);
        if self.auto_refill_enabled == Some(true) && clears_refill {
            errors.push(auto_refill_without_refill());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn refill_pair_split() -> FieldError {
    FieldError::new(
        "refillThreshold",
        "and refillAmount must be both set or both null",
    )
}

fn auto_refill_without_refill() -> FieldError {
    FieldError::new(
        "autoRefillEnabled",
        "needs refillThreshold and refillAmount",
    )
}

/// A config value `n` sent for `field` that is not from `min` to [`Credits::MAX`].
fn out_of_range(field: &str, n: i64, min: i64) -> Option<FieldError> {
    let max = i64::try_from(Credits::MAX).unwrap_or(i64::MAX);
    (n < min || n > max).then(|| {
        FieldError::new(
            field,
            format!("must be null or an integer from {min} to {}", Credits::MAX),
        )
    })
}

impl CreditConfig {
    /// The config after `patch`, validated: numbers are whole and non-negative (an amount
    /// positive), threshold and amount are set together, and auto-refill needs both.
    pub fn patched(&self, patch: CreditConfigPatch) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut value =
            |field: &str, sent: Option<Option<i64>>, current: Option<u64>, min: i64| match sent {
                None => current,
                Some(None) => None,
                Some(Some(n)) => match out_of_range(field, n, min) {
                    Some(error) => {
                        errors.push(error);
                        current
                    }
                    None => u64::try_from(n).ok(),
                },
            };
        let monthly_credit_cap = value(
            "monthlyCreditCap",
            patch.monthly_credit_cap,
            self.monthly_credit_cap,
            0,
        );
        let refill_threshold = value(
            "refillThreshold",
            patch.refill_threshold,
            self.refill_threshold,
            0,
        );
        let refill_amount = value("refillAmount", patch.refill_amount, self.refill_amount, 1);
        if refill_threshold.is_some() != refill_amount.is_some() {
            errors.push(refill_pair_split());
        }
        let refill_set = refill_threshold.is_some() && refill_amount.is_some();
        let refill_changed = patch.refill_threshold.is_some() || patch.refill_amount.is_some();
        let auto_refill_enabled = match patch.auto_refill_enabled {
            Some(true) if !refill_set => {
                errors.push(auto_refill_without_refill());
                false
            }
            Some(enabled) => enabled,
            // Setting both refill values turns auto-refill on; clearing them turns it off.
            None if refill_changed => refill_set,
            None => self.auto_refill_enabled && refill_set,
        };
        if errors.is_empty() {
            Ok(Self {
                monthly_credit_cap,
                refill_threshold,
                refill_amount,
                auto_refill_enabled,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn patch(
        cap: Option<Option<i64>>,
        threshold: Option<Option<i64>>,
        amount: Option<Option<i64>>,
    ) -> CreditConfigPatch {
        CreditConfigPatch {
            monthly_credit_cap: cap,
            refill_threshold: threshold,
            refill_amount: amount,
            auto_refill_enabled: None,
        }
    }

    #[test]
    fn values_set_clear_and_stay() {
        let on = CreditConfig::default()
            .patched(patch(Some(Some(500)), Some(Some(100)), Some(Some(1_000))))
            .unwrap();
        assert_eq!(
            on,
            CreditConfig {
                monthly_credit_cap: Some(500),
                refill_threshold: Some(100),
                refill_amount: Some(1_000),
                auto_refill_enabled: true
            }
        );
        let same = on.patched(CreditConfigPatch::default()).unwrap();
        assert_eq!(same, on);
        let off = on
            .patched(patch(Some(None), Some(None), Some(None)))
            .unwrap();
        assert_eq!(off, CreditConfig::default());
    }

    #[test]
    fn refill_values_go_together_and_numbers_are_bounded() {
        assert!(CreditConfig::default()
            .patched(patch(None, Some(Some(100)), None))
            .is_err());
        assert!(CreditConfig::default()
            .patched(patch(Some(Some(-1)), None, None))
            .is_err());
        assert!(CreditConfig::default()
            .patched(patch(None, Some(Some(1)), Some(Some(0))))
            .is_err());
        let enable_alone = CreditConfigPatch {
            auto_refill_enabled: Some(true),
            ..CreditConfigPatch::default()
        };
        assert!(CreditConfig::default().patched(enable_alone).is_err());
    }

    #[test]
    fn values_are_checked_without_the_stored_config() {
        let fields = |p: CreditConfigPatch| -> Vec<String> {
            p.check_values()
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(
            fields(patch(Some(Some(-1)), Some(Some(-1)), Some(Some(0)))),
            ["monthlyCreditCap", "refillThreshold", "refillAmount"]
        );
        assert_eq!(
            fields(patch(Some(Some(1 << 53)), None, None)),
            ["monthlyCreditCap"]
        );
        // A pair sent whole must agree with itself, whatever is stored.
        assert_eq!(
            fields(patch(None, Some(Some(100)), Some(None))),
            ["refillThreshold"]
        );
        assert_eq!(
            fields(patch(None, Some(None), Some(Some(100)))),
            ["refillThreshold"]
        );
        let enable_and_clear = CreditConfigPatch {
            auto_refill_enabled: Some(true),
            ..patch(None, Some(None), None)
        };
        assert_eq!(fields(enable_and_clear), ["autoRefillEnabled"]);
        // One half of the pair alone depends on what is stored: not checked here.
        assert!(patch(None, Some(Some(100)), None).check_values().is_ok());
        assert!(patch(Some(None), Some(Some(0)), Some(Some(1)))
            .check_values()
            .is_ok());
    }

    #[test]
    fn a_refill_is_due_below_the_threshold_only() {
        let config = CreditConfig {
            refill_threshold: Some(100),
            refill_amount: Some(500),
            auto_refill_enabled: true,
            ..CreditConfig::default()
        };
        let id = OrganizationId::from_uuid(uuid::Uuid::nil());
        assert_eq!(
            config.refill_for(&Wallet {
                organization_id: id,
                balance: 99,
                reserved: 0
            }),
            Some(500)
        );
        assert_eq!(
            config.refill_for(&Wallet {
                organization_id: id,
                balance: 100,
                reserved: 0
            }),
            None
        );
        let off = CreditConfig {
            auto_refill_enabled: false,
            ..config
        };
        assert_eq!(
            off.refill_for(&Wallet {
                organization_id: id,
                balance: 0,
                reserved: 0
            }),
            None
        );
    }
}
