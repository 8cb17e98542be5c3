//! The two timestamp formats of API.md §1.4.

use domain::Timestamp;
use time::format_description::FormatItem;
use time::macros::format_description;

/// Organization objects: `2026-06-01T14:30:00.000000+00:00`.
const ORGANIZATION: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");
/// Every other resource: `2026-06-03T18:14:02.187Z`.
const OTHER: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn organization(t: Timestamp) -> String {
    format(t, ORGANIZATION)
}

pub fn other(t: Timestamp) -> String {
    format(t, OTHER)
}

fn format(t: Timestamp, description: &[FormatItem<'static>]) -> String {
    // Timestamps are always UTC and within year 0..=9999, the only case where formatting fails.
    t.as_offset_datetime()
        .format(description)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_exactly_as_the_contract() {
        let t = Timestamp::from_offset_datetime(datetime!(2026-06-01 14:30:00.0000789 UTC));
        assert_eq!(organization(t), "2026-06-01T14:30:00.000078+00:00");
        assert_eq!(other(t), "2026-06-01T14:30:00.000Z");
        let t = Timestamp::from_offset_datetime(datetime!(2026-06-03 18:14:02.187654 UTC));
        assert_eq!(other(t), "2026-06-03T18:14:02.187Z");
    }
}
