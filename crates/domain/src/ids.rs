//! Resource ids: UUIDs behind a type per resource, written `<prefix>_<uuid>` (API.md §1.3).

use uuid::Uuid;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an id of the form {prefix}<uuid> or a bare UUID")]
pub struct IdParseError {
    pub prefix: &'static str,
}

/// Declares an id type: a UUID newtype with its prefix (used by other modules for their ids).
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// Accepts the prefixed form or the bare UUID, in any letter case; the UUID must be in
            /// its hyphenated form. Another resource's prefix is an error.
            pub fn parse(input: &str) -> Result<Self, $crate::ids::IdParseError> {
                $crate::ids::parse_prefixed(input, $prefix).map(Self).ok_or($crate::ids::IdParseError { prefix: $prefix })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{}", $prefix, self.0.hyphenated())
            }
        }
    };
}

pub(crate) use prefixed_id;

/// Declares a time-ordered id type: a ULID (48 bits of milliseconds, then 80 random bits) kept as
/// its 128 bits and written `<prefix><26 Crockford base32 characters>` (API.md §1.3).
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// The id of something that happened at `at`.
            pub fn new(at: $crate::Timestamp, random: [u8; 10]) -> Self {
                Self(uuid::Uuid::from_u128($crate::ids::ulid_bits(at, random)))
            }

            pub fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// The written form, in any letter case.
            pub fn parse(input: &str) -> Result<Self, $crate::ids::IdParseError> {
                $crate::ids::parse_ulid(input, $prefix)
                    .map(|bits| Self(uuid::Uuid::from_u128(bits)))
                    .ok_or($crate::ids::IdParseError { prefix: $prefix })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($prefix)?;
                f.write_str(&$crate::ids::crockford(self.0.as_u128()))
            }
        }
    };
}

pub(crate) use ulid_id;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub(crate) fn ulid_bits(at: crate::Timestamp, random: [u8; 10]) -> u128 {
    let millis = u128::try_from(at.unix_micros() / 1_000).unwrap_or(0) & ((1 << 48) - 1);
    let mut bits = millis << 80;
    for (i, byte) in random.iter().enumerate() {
        bits |= u128::from(*byte) << (72 - 8 * i);
    }
    bits
}

pub(crate) fn crockford(bits: u128) -> String {
    (0..26)
        .rev()
        .map(|i| char::from(CROCKFORD[((bits >> (i * 5)) & 0x1f) as usize]))
        .collect()
}

pub(crate) fn parse_ulid(input: &str, prefix: &str) -> Option<u128> {
    let upper = input.to_ascii_uppercase();
    let body = upper.strip_prefix(&prefix.to_ascii_uppercase())?;
    if body.len() != 26 || body.as_bytes()[0] > b'7' {
        return None;
    }
    body.bytes().try_fold(0u128, |bits, c| {
        let digit = CROCKFORD.iter().position(|d| *d == c)?;
        Some((bits << 5) | u128::try_from(digit).ok()?)
    })
}

prefixed_id!(
    /// An organization, top-level or child: `org_<uuid>`.
    OrganizationId,
    "org_"
);
prefixed_id!(
    /// An API key: `key_<uuid>`.
    ApiKeyId,
    "key_"
);

pub(crate) fn parse_prefixed(input: &str, prefix: &str) -> Option<Uuid> {
    let lower = input.to_ascii_lowercase();
    let bare = lower.strip_prefix(prefix).unwrap_or(&lower);
    // Only the canonical hyphenated form: `Uuid::parse_str` would also take braces, URNs and
    // the simple form, none of which the contract promises.
    if bare.len() != 36 {
        return None;
    }
    Uuid::try_parse(bare).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "d4e5f6a7-8b9c-4d0e-9f2a-3b4c5d6e7f80";

    #[test]
    fn parses_prefixed_bare_and_any_case() {
        let expected = OrganizationId::parse(&format!("org_{UUID}")).unwrap();
        assert_eq!(OrganizationId::parse(UUID).unwrap(), expected);
        assert_eq!(
            OrganizationId::parse(&UUID.to_uppercase()).unwrap(),
            expected
        );
        assert_eq!(
            OrganizationId::parse(&format!("ORG_{}", UUID.to_uppercase())).unwrap(),
            expected
        );
        assert_eq!(expected.to_string(), format!("org_{UUID}"));
    }

    #[test]
    fn rejects_other_prefixes_and_malformed_input() {
        for bad in [
            format!("key_{UUID}"),
            format!("org_{}", &UUID[1..]),
            format!("org_{{{UUID}}}"),
            UUID.replace('-', ""),
            "org_".to_string(),
            String::new(),
            format!("org_{UUID}x"),
        ] {
            assert_eq!(
                OrganizationId::parse(&bad),
                Err(IdParseError { prefix: "org_" }),
                "{bad}"
            );
        }
        assert!(ApiKeyId::parse(&format!("org_{UUID}")).is_err());
    }
}
