use std::collections::BTreeMap;

use crate::validation::FieldError;

/// Free-form string → string pairs a partner keeps on an organization (API.md §4.3): keys 1–40
/// characters, values ≤ 500 characters, ≤ 50 keys, ≤ 16 KiB as JSON. An empty value is never
/// stored: on create as on patch, `""` means "no such key".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

/// How a PATCH changes metadata (API.md §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataPatch {
    /// `"metadata": null` — remove every key.
    Clear,
    /// Each sent key is set, or removed when its value is `""`; the other keys stay.
    Merge(BTreeMap<String, String>),
}

impl Metadata {
    pub const MAX_KEYS: usize = 50;
    pub const MAX_KEY_CHARS: usize = 40;
    pub const MAX_VALUE_CHARS: usize = 500;
    pub const MAX_SERIALIZED_BYTES: usize = 16 * 1024;

    /// Metadata as sent on create: a merge into nothing.
    pub fn from_input(pairs: BTreeMap<String, String>) -> Result<Self, Vec<FieldError>> {
        Self::default().patched(MetadataPatch::Merge(pairs))
    }

    /// Restores stored metadata without re-validating it (it was validated when written).
    pub fn from_stored(pairs: BTreeMap<String, String>) -> Self {
        Self(pairs)
    }

    /// The metadata after `patch`, with the bounds checked on the result.
    pub fn patched(&self, patch: MetadataPatch) -> Result<Self, Vec<FieldError>> {
        patch.check_pairs()?;
        let sent = match patch {
            MetadataPatch::Clear => return Ok(Self::default()),
            MetadataPatch::Merge(sent) => sent,
        };
        let mut errors = Vec::new();
        let mut merged = self.0.clone();
        for (key, value) in sent {
            if value.is_empty() {
                merged.remove(&key);
            } else {
                merged.insert(key, value);
            }
        }
        if merged.len() > Self::MAX_KEYS {
            errors.push(FieldError::new(
                "metadata",
                format!("must have at most {} keys", Self::MAX_KEYS),
            ));
        }
        if serialized_len(&merged) > Self::MAX_SERIALIZED_BYTES {
            errors.push(FieldError::new(
                "metadata",
                "must be at most 16 KiB when serialized as JSON",
            ));
        }
        if errors.is_empty() {
            Ok(Self(merged))
        } else {
            Err(errors)
        }
    }

    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl MetadataPatch {
    /// The checks that need nothing stored: each sent key and value on its own. They are request
    /// validation (`422` before `404`, API.md §1.2); the bounds of the merged result are checked
    /// by [`Metadata::patched`], once the stored metadata is known.
    pub fn check_pairs(&self) -> Result<(), Vec<FieldError>> {
        let errors: Vec<FieldError> = match self {
            Self::Clear => Vec::new(),
            Self::Merge(sent) => sent
                .iter()
                .filter_map(|(key, value)| check_pair(key, value).err())
                .collect(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn check_pair(key: &str, value: &str) -> Result<(), FieldError> {
    crate::validation::no_nul(&format!("metadata.{key}"), key)?;
    crate::validation::no_nul(&format!("metadata.{key}"), value)?;
    let key_chars = key.chars().count();
    if key_chars == 0 || key_chars > Metadata::MAX_KEY_CHARS {
        return Err(FieldError::new(
            format!("metadata.{key}"),
            format!("keys must be 1-{} characters", Metadata::MAX_KEY_CHARS),
        ));
    }
    if value.chars().count() > Metadata::MAX_VALUE_CHARS {
        return Err(FieldError::new(
            format!("metadata.{key}"),
            format!(
                "values must be at most {} characters",
                Metadata::MAX_VALUE_CHARS
            ),
        ));
    }
    Ok(())
}

/// Byte length of the map written as a JSON object, without needing a JSON library here.
fn serialized_len(pairs: &BTreeMap<String, String>) -> usize {
    let body: usize = pairs
        .iter()
        .map(|(key, value)| json_string_len(key) + 1 + json_string_len(value))
        .sum();
    2 + body + pairs.len().saturating_sub(1)
}

fn json_string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_adds_overwrites_keeps_and_removes() {
        let current = Metadata::from_input(map(&[("a", "1"), ("b", "2"), ("c", "3")])).unwrap();
        let patched = current
            .patched(MetadataPatch::Merge(map(&[
                ("a", "10"),
                ("c", ""),
                ("d", "4"),
            ])))
            .unwrap();
        assert_eq!(
            patched.pairs(),
            &map(&[("a", "10"), ("b", "2"), ("d", "4")])
        );
        assert_eq!(
            current.patched(MetadataPatch::Clear).unwrap(),
            Metadata::default()
        );
    }

    #[test]
    fn empty_values_are_not_stored_on_create() {
        assert_eq!(
            Metadata::from_input(map(&[("a", "")])).unwrap(),
            Metadata::default()
        );
    }

    #[test]
    fn bounds_are_checked_after_the_merge() {
        let fifty: BTreeMap<_, _> = (0..50)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let full = Metadata::from_input(fifty).unwrap();
        let err = full
            .patched(MetadataPatch::Merge(map(&[("extra", "v")])))
            .unwrap_err();
        assert_eq!(err[0].field, "metadata");
        // Replacing one key with another keeps it at fifty.
        assert!(full
            .patched(MetadataPatch::Merge(map(&[("k0", ""), ("extra", "v")])))
            .is_ok());
    }

    #[test]
    fn key_and_value_lengths_name_the_key() {
        let err = Metadata::from_input(map(&[(&"k".repeat(41), "v")])).unwrap_err();
        assert!(err[0].message.contains("1-40"));
        let err = Metadata::from_input(map(&[("k", &"v".repeat(501))])).unwrap_err();
        assert_eq!(err[0].field, "metadata.k");
        assert!(Metadata::from_input(map(&[("k", &"v".repeat(500))])).is_ok());
    }

    #[test]
    fn serialized_size_is_bounded() {
        // 40 keys of 450 characters: within per-value bounds, over 16 KiB together.
        let big: BTreeMap<_, _> = (0..40)
            .map(|i| (format!("k{i}"), "x".repeat(450)))
            .collect();
        let err = Metadata::from_input(big).unwrap_err();
        assert!(err[0].message.contains("16 KiB"));
        assert_eq!(
            serialized_len(&map(&[("a", "b\"")])),
            r#"{"a":"b\""}"#.len()
        );
    }
}
