//! Query strings, parsed by hand so each bad parameter gets a `422` that names it.

use std::collections::HashMap;

use actix_web::HttpRequest;
use domain::pagination::PageRequest;
use domain::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cursor;
use crate::error::ApiError;

pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses the query string. `allowed` lists the parameters the route takes; any other one is
    /// refused, so a typo (`limt=5`) is reported instead of silently ignored.
    pub fn parse(request: &HttpRequest, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(request.query_string())
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?;
        let mut params = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(&name, "is not a parameter of this route"));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(ApiError::invalid(&name, "must be given at most once"));
            }
        }
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit` (default `default`, 1..=`max`) and `cursor` of a listing (API.md §1.5).
    pub fn page(
        &self,
        list: &'static str,
        default: usize,
        max: usize,
    ) -> Result<PageRequest, ApiError> {
        let limit = match self.get("limit") {
            None => default,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=max).contains(limit))
                .ok_or_else(|| {
                    ApiError::invalid("limit", &format!("must be an integer from 1 to {max}"))
                })?,
        };
        let after = self
            .get("cursor")
            .map(|raw| cursor::decode(list, raw))
            .transpose()?;
        Ok(PageRequest { after, limit })
    }

    /// `since` and `until` of a listing by time (API.md §1.4), both inclusive, `Z` form only.
    /// Instants are shown to the millisecond and kept to the microsecond: `until` takes in the
    /// whole of the last unit it names, down to the millisecond, so an item's own shown time
    /// finds it (`…02.187Z` takes in `…02.187999`); finer digits are taken as written.
    pub fn period(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), ApiError> {
        let since = self
            .get("since")
            .map(|raw| z_instant("since", raw))
            .transpose()?;
        let until = self
            .get("until")
            .map(|raw| {
                z_instant("until", raw)
                    .map(|t| t.plus(time::Duration::microseconds(unnamed_micros(raw))))
            })
            .transpose()?;
        Ok((since, until))
    }
}

/// Microseconds below the last fractional digit of an instant, if the millisecond is named
/// (`…02Z` and `…02.187Z` name a millisecond: 999; `…02.1871Z`: 99; six digits or more: 0).
fn unnamed_micros(raw: &str) -> i64 {
    let digits = raw
        .split_once('.')
        .map_or(0, |(_, fraction)| {
            fraction.chars().take_while(char::is_ascii_digit).count()
        })
        .clamp(3, 6);
    10_i64.pow(6 - digits as u32) - 1
}

/// An instant in the `Z` form only (API.md §1.4): `2026-06-03T18:14:02.187Z`.
fn z_instant(field: &str, raw: &str) -> Result<Timestamp, ApiError> {
    let invalid = || {
        ApiError::invalid(
            field,
            "must be a UTC instant ending in Z, like 2026-06-03T18:14:02.187Z",
        )
    };
    if !raw.ends_with('Z') {
        return Err(invalid());
    }
    let parsed = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| invalid())?;
    Timestamp::from_unix_micros(Timestamp::from_offset_datetime(parsed).unix_micros())
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::unnamed_micros;

    #[test]
    fn until_takes_in_the_rest_of_the_millisecond_it_names_and_no_more() {
        assert_eq!(unnamed_micros("2026-06-03T18:14:02Z"), 999);
        assert_eq!(unnamed_micros("2026-06-03T18:14:02.1Z"), 999);
        assert_eq!(unnamed_micros("2026-06-03T18:14:02.187Z"), 999);
        assert_eq!(unnamed_micros("2026-06-03T18:14:02.1871Z"), 99);
        assert_eq!(unnamed_micros("2026-06-03T18:14:02.18712Z"), 9);
        assert_eq!(unnamed_micros("2026-06-03T18:14:02.187123Z"), 0);
        assert_eq!(unnamed_micros("2026-06-03T18:14:02.187123456Z"), 0);
    }
}
