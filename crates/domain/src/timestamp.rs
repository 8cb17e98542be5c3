//! Instants in UTC with microsecond precision: what PostgreSQL keeps, so a value read back from
//! any store equals the value written.

use time::{Duration, OffsetDateTime, UtcOffset};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Converts to UTC and truncates to whole microseconds.
    pub fn from_offset_datetime(value: OffsetDateTime) -> Self {
        let utc = value.to_offset(UtcOffset::UTC);
        let micros = utc.microsecond();
        let truncated = utc.replace_microsecond(micros).unwrap_or(utc);
        Self(truncated)
    }

    /// Microseconds since the Unix epoch; `None` outside years 1 to 9999, the instants every
    /// store can keep (PostgreSQL's `timestamptz` stops at 4713 BC).
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .filter(|t| (1..=9999).contains(&t.year()))
            .map(Self)
    }

    pub fn unix_micros(&self) -> i64 {
        // In range by construction: `time` supports years ±9999, far inside i64 microseconds.
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
    }

    pub fn as_offset_datetime(&self) -> OffsetDateTime {
        self.0
    }

    pub fn plus(&self, duration: Duration) -> Self {
        Self::from_offset_datetime(self.0.saturating_add(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn truncates_to_microseconds_and_round_trips() {
        let t = Timestamp::from_offset_datetime(datetime!(2026-06-01 14:30:00.123456789 +02:00));
        assert_eq!(
            t.as_offset_datetime(),
            datetime!(2026-06-01 12:30:00.123456 UTC)
        );
        assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
    }

    #[test]
    fn only_years_one_to_9999_come_from_numbers() {
        assert!(
            Timestamp::from_unix_micros(-377_705_116_800_000_000).is_none(),
            "year -9999"
        );
        assert!(
            Timestamp::from_unix_micros(-62_135_596_800_000_000).is_some(),
            "0001-01-01"
        );
        assert!(Timestamp::from_unix_micros(i64::MAX).is_none());
    }
}
