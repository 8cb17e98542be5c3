//! Property tests of the domain's hostile-input surfaces: id parsing (API.md §1.3), key parsing
//! and minting (§2.1), and the metadata merge (§4.3, §4.6), checked against a plain `BTreeMap`
//! model of the contract's rules.
//!
//! Every property also means "never panics": proptest reports a panic inside a case as a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use domain::api_key::{KeyEnv, MintedSecret, PresentedKey};
use domain::organization::{Metadata, MetadataPatch};
use domain::{ApiKeyId, OrganizationId};
use proptest::prelude::*;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Ids (API.md §1.3)
// ---------------------------------------------------------------------------------------------

/// Every prefix the contract names, and a few near misses of `org_` / `key_`.
const PREFIXES: [&str; 17] = [
    "org_", "key_", "txn_", "rsv_", "whe_", "whd_", "evt_", "aud_", "req_", "org", "org-", "orgs_",
    "_org_", "org__", "key", "ke_", "x_",
];

fn any_uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(Uuid::from_bytes)
}

/// `s` with the letter case of each ASCII character flipped where `mask` says so.
fn recase(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().copied().chain(std::iter::repeat(false)))
        .map(|(c, flip)| {
            if !flip {
                c
            } else if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Strings near a valid id: a prefix (or none), then a uuid in some form, then edits.
fn near_id() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just(String::new()),
        proptest::sample::select(PREFIXES.to_vec()).prop_map(str::to_owned),
        "[a-zA-Z_]{0,6}",
    ];
    let form = (any_uuid(), 0..5u8).prop_map(|(uuid, form)| match form {
        0 => uuid.hyphenated().to_string(),
        1 => uuid.simple().to_string(),
        2 => uuid.braced().to_string(),
        3 => uuid.urn().to_string(),
        _ => uuid.hyphenated().to_string().to_uppercase(),
    });
    let edit = prop_oneof![
        Just(None),
        (any::<proptest::sample::Index>(), any::<char>()).prop_map(Some),
    ];
    (prefix, form, edit, any::<u8>()).prop_map(|(prefix, body, edit, action)| {
        let mut chars: Vec<char> = format!("{prefix}{body}").chars().collect();
        if let Some((at, c)) = edit {
            let i = at.index(chars.len() + 1);
            match action % 3 {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

/// An id parsed from `input` is `input` in canonical form: the prefixed or the bare hyphenated
/// UUID, differing only by ASCII letter case. Nothing else is accepted.
fn accepted_only_in_canonical_form(input: &str, shown: &str, prefix: &str) -> bool {
    input.eq_ignore_ascii_case(shown)
        || shown
            .strip_prefix(prefix)
            .is_some_and(|bare| input.eq_ignore_ascii_case(bare))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn id_parsing_never_panics_on_arbitrary_strings(input in any::<String>()) {
        let _ = OrganizationId::parse(&input);
        let _ = ApiKeyId::parse(&input);
    }

    #[test]
    fn id_parsing_accepts_nothing_but_the_canonical_forms(input in near_id()) {
        if let Ok(id) = OrganizationId::parse(&input) {
            prop_assert!(
                accepted_only_in_canonical_form(&input, &id.to_string(), "org_"),
                "{input:?} parsed as {id}"
            );
        }
        if let Ok(id) = ApiKeyId::parse(&input) {
            prop_assert!(
                accepted_only_in_canonical_form(&input, &id.to_string(), "key_"),
                "{input:?} parsed as {id}"
            );
        }
    }

    #[test]
    fn display_then_parse_round_trips_for_any_uuid(uuid in any_uuid()) {
        let org = OrganizationId::from_uuid(uuid);
        let key = ApiKeyId::from_uuid(uuid);
        let (org_text, key_text) = (org.to_string(), key.to_string());
        prop_assert_eq!(&org_text, &format!("org_{}", uuid.hyphenated()));
        prop_assert_eq!(&key_text, &format!("key_{}", uuid.hyphenated()));
        // Responses always use the lowercase prefixed form.
        prop_assert_eq!(org_text.to_ascii_lowercase(), org_text.clone());
        prop_assert_eq!(OrganizationId::parse(&org_text), Ok(org));
        prop_assert_eq!(ApiKeyId::parse(&key_text), Ok(key));
        prop_assert_eq!(OrganizationId::parse(&org_text).unwrap().as_uuid(), uuid);
    }

    #[test]
    fn any_letter_case_and_the_bare_form_are_accepted(
        uuid in any_uuid(),
        mask in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let org = OrganizationId::from_uuid(uuid);
        let key = ApiKeyId::from_uuid(uuid);
        let bare = uuid.hyphenated().to_string();
        prop_assert_eq!(OrganizationId::parse(&recase(&org.to_string(), &mask)), Ok(org));
        prop_assert_eq!(ApiKeyId::parse(&recase(&key.to_string(), &mask)), Ok(key));
        prop_assert_eq!(OrganizationId::parse(&recase(&bare, &mask)), Ok(org));
        prop_assert_eq!(ApiKeyId::parse(&recase(&bare, &mask)), Ok(key));
    }

    #[test]
    fn other_prefixes_are_refused(
        uuid in any_uuid(),
        prefix in prop_oneof![
            proptest::sample::select(PREFIXES.to_vec()).prop_map(str::to_owned),
            ".{1,6}",
        ],
        mask in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let text = recase(&format!("{prefix}{}", uuid.hyphenated()), &mask);
        let lower = prefix.to_ascii_lowercase();
        if lower != "org_" {
            prop_assert!(OrganizationId::parse(&text).is_err(), "{text:?} was accepted as an org id");
        }
        if lower != "key_" {
            prop_assert!(ApiKeyId::parse(&text).is_err(), "{text:?} was accepted as a key id");
        }
    }

    #[test]
    fn non_hyphenated_uuid_forms_are_refused(uuid in any_uuid(), prefixed in any::<bool>()) {
        for form in [
            uuid.simple().to_string(),
            uuid.braced().to_string(),
            uuid.urn().to_string(),
        ] {
            let org = if prefixed { format!("org_{form}") } else { form.clone() };
            let key = if prefixed { format!("key_{form}") } else { form };
            prop_assert!(OrganizationId::parse(&org).is_err(), "{org:?}");
            prop_assert!(ApiKeyId::parse(&key).is_err(), "{key:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys (API.md §2.1)
// ---------------------------------------------------------------------------------------------

const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn any_env() -> impl Strategy<Value = KeyEnv> {
    prop_oneof![Just(KeyEnv::Live), Just(KeyEnv::Test)]
}

/// Strings shaped almost like keys: the right skeleton with parts of the wrong length, alphabet,
/// env or separator, multi-byte characters where the parser slices by length, and so on.
fn near_key() -> impl Strategy<Value = String> {
    let env = prop_oneof![
        Just("live".to_owned()),
        Just("test".to_owned()),
        "[a-zA-Z]{0,6}",
    ];
    let handle = prop_oneof![
        "[0-9A-HJKMNP-TV-Z]{16}",
        "[0-9A-Z]{14,18}",
        "[0-9a-z]{16}",
        ".{14,17}",
    ];
    let secret = prop_oneof![
        "[A-Za-z0-9_-]{43}",
        "[A-Za-z0-9_-]{40,46}",
        "[A-Za-z0-9+/=]{43}",
        ".{41,44}",
    ];
    let separator = prop_oneof![4 => Just("_"), 1 => Just("-"), 1 => Just(""), 1 => Just("__")];
    (
        prop_oneof![4 => Just("lp_"), 1 => Just("LP_"), 1 => Just("lp"), 1 => Just("")],
        env,
        separator.clone(),
        handle,
        separator,
        secret,
    )
        .prop_map(|(lp, env, s1, handle, s2, secret)| format!("{lp}{env}{s1}{handle}{s2}{secret}"))
}

/// The only strings `PresentedKey::parse` accepts are well-formed keys, and it gives back their
/// parts.
fn check_presented(input: &str) -> Result<(), TestCaseError> {
    if let Some(key) = PresentedKey::parse(input) {
        let rebuilt = format!(
            "lp_{}_{}_{}",
            key.env.as_str(),
            key.handle.as_str(),
            key.secret()
        );
        prop_assert_eq!(&rebuilt, input);
        prop_assert_eq!(key.handle.as_str().len(), 16);
        prop_assert!(key.handle.as_str().chars().all(|c| CROCKFORD.contains(c)));
        prop_assert_eq!(key.secret().len(), 43);
        prop_assert!(key
            .secret()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        // Its Debug form, which may end up in a log, shows the prefix and not the secret.
        let debug = format!("{key:?}");
        prop_assert!(!debug.contains(key.secret()), "{debug}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn key_parsing_never_panics_on_arbitrary_strings(input in any::<String>()) {
        check_presented(&input)?;
    }

    #[test]
    fn key_parsing_accepts_only_well_formed_keys(input in near_key()) {
        check_presented(&input)?;
    }

    #[test]
    fn minted_keys_always_parse_back_and_verify(
        env in any_env(),
        handle in any::<[u8; 10]>(),
        secret in any::<[u8; 32]>(),
    ) {
        let minted = MintedSecret::new(env, handle, secret);
        let full = minted.reveal();
        prop_assert_eq!(full.len(), "lp_live_".len() + 16 + 1 + 43);
        let prefix = format!("lp_{}_{}", env.as_str(), minted.handle.as_str());
        let start = format!("{prefix}_");
        prop_assert!(full.starts_with(&start), "{full} does not start with {start}");

        let presented = PresentedKey::parse(full).expect("a minted key parses");
        prop_assert_eq!(presented.env, env);
        prop_assert_eq!(&presented.handle, &minted.handle);
        prop_assert!(minted.hash.matches(presented.secret()));
        check_presented(full)?;

        // Neither Debug form shows the secret.
        for debug in [format!("{minted:?}"), format!("{presented:?}")] {
            prop_assert!(!debug.contains(presented.secret()), "{debug}");
            prop_assert!(!debug.contains(full), "{debug}");
        }
    }

    #[test]
    fn a_minted_key_with_any_secret_character_changed_does_not_verify(
        env in any_env(),
        handle in any::<[u8; 10]>(),
        secret in any::<[u8; 32]>(),
        at in 0..43usize,
        replacement in "[A-Za-z0-9_-]",
    ) {
        let minted = MintedSecret::new(env, handle, secret);
        let full = minted.reveal();
        let secret_start = full.len() - 43;
        let mut edited = full.to_owned();
        edited.replace_range(secret_start + at..secret_start + at + 1, &replacement);
        let presented = PresentedKey::parse(&edited).expect("still shaped like a key");
        prop_assert_eq!(minted.hash.matches(presented.secret()), edited == full);
    }

    #[test]
    fn distinct_handles_or_secrets_give_distinct_keys(
        a in (any::<[u8; 10]>(), any::<[u8; 32]>()),
        b in (any::<[u8; 10]>(), any::<[u8; 32]>()),
    ) {
        let first = MintedSecret::new(KeyEnv::Live, a.0, a.1);
        let second = MintedSecret::new(KeyEnv::Live, b.0, b.1);
        prop_assert_eq!(first.handle == second.handle, a.0 == b.0);
        prop_assert_eq!(first.reveal() == second.reveal(), a == b);
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata (API.md §4.3, §4.6): model-based
// ---------------------------------------------------------------------------------------------

type Model = BTreeMap<String, String>;

/// Why the model refuses a change, as the domain's field errors name it.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// These sent keys are invalid (`metadata.<key>` each).
    Pairs(Vec<String>),
    /// The merged result breaks a bound of the whole map (`metadata`).
    Bounds,
}

/// API.md §4.6 written down as plainly as possible: check every sent pair (keys 1–40 characters,
/// values ≤ 500), merge (`""` removes, anything else sets, the rest is kept; `null` clears all),
/// then check the bounds on the result (≤ 50 keys, ≤ 16 KiB as JSON).
fn model_patch(current: &Model, patch: &MetadataPatch) -> Result<Model, Refusal> {
    let sent = match patch {
        MetadataPatch::Clear => return Ok(Model::new()),
        MetadataPatch::Merge(sent) => sent,
    };
    let bad: Vec<String> = sent
        .iter()
        .filter(|(k, v)| {
            let k = k.chars().count();
            k == 0 || k > 40 || v.chars().count() > 500
        })
        .map(|(k, _)| k.clone())
        .collect();
    if !bad.is_empty() {
        return Err(Refusal::Pairs(bad));
    }
    let mut merged = current.clone();
    for (key, value) in sent {
        if value.is_empty() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    let serialized = serde_json::to_string(&merged).unwrap().len();
    if merged.len() > 50 || serialized > 16 * 1024 {
        return Err(Refusal::Bounds);
    }
    Ok(merged)
}

/// What the domain's answer means in the model's terms.
fn refusal_of(errors: &[domain::validation::FieldError]) -> Refusal {
    if errors.iter().all(|e| e.field == "metadata") {
        Refusal::Bounds
    } else {
        Refusal::Pairs(
            errors
                .iter()
                .map(|e| {
                    e.field
                        .strip_prefix("metadata.")
                        .unwrap_or_else(|| panic!("unexpected field {:?}", e.field))
                        .to_owned()
                })
                .collect(),
        )
    }
}

fn assert_bounds(pairs: &Model) -> Result<(), TestCaseError> {
    prop_assert!(pairs.len() <= 50, "{} keys", pairs.len());
    for (key, value) in pairs {
        let (k, v) = (key.chars().count(), value.chars().count());
        prop_assert!((1..=40).contains(&k), "key {key:?}");
        // `""` is never stored (docs/decisions.md): it means "no such key".
        prop_assert!(
            (1..=500).contains(&v),
            "value of {key:?} has {v} characters"
        );
    }
    let serialized = serde_json::to_string(pairs).unwrap().len();
    prop_assert!(serialized <= 16 * 1024, "{serialized} bytes serialized");
    Ok(())
}

/// Valid keys from a small pool, so merges collide with what is stored; some at the 40-character
/// limit, multi-byte (characters, not bytes, are counted), or made of characters JSON escapes.
fn metadata_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "k[0-9]{1,2}",
        2 => "[a-c]{1,2}",
        1 => "[a-zA-Z0-9]{38,40}",
        1 => "[\u{e9}\u{4e2d}\u{1f600}]{1,40}",
        1 => "[\"\\\\\u{1}\n\u{7f}\u{2028} a]{1,40}",
    ]
}

/// Values of every size class: removal (`""`), small, up to the 500-character limit, multi-byte,
/// and characters JSON escapes (which count double or six-fold towards 16 KiB).
fn metadata_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        4 => "[a-z0-9]{1,12}",
        4 => (300..=500usize).prop_map(|n| "x".repeat(n)),
        1 => (1..=500usize).prop_map(|n| "\u{1f600}".repeat(n)),
        1 => (1..=500usize, proptest::sample::select(vec!['"', '\\', '\n', '\u{1}', '\u{1f}']))
            .prop_map(|(n, c)| c.to_string().repeat(n)),
        1 => "\\PC{0,40}",
    ]
}

/// A pair §4.3 refuses: a key that is empty or over 40 characters, or a value over 500.
fn invalid_pair() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (
            prop_oneof![
                Just(String::new()),
                "[a-z]{41,44}",
                "[\u{e9}\u{1f600}]{41,42}"
            ],
            metadata_value(),
        ),
        (
            metadata_key(),
            prop_oneof![
                (501..=503usize).prop_map(|n| "v".repeat(n)),
                Just("\u{1f600}".repeat(501)),
            ],
        ),
    ]
}

/// Mostly valid pairs (so merges get as far as the bounds of the whole map), now and then with
/// one invalid pair among them.
fn metadata_map(max: usize) -> impl Strategy<Value = Model> {
    (
        proptest::collection::btree_map(metadata_key(), metadata_value(), 0..=max),
        proptest::option::weighted(0.15, invalid_pair()),
    )
        .prop_map(|(mut pairs, invalid)| {
            if let Some((key, value)) = invalid {
                pairs.insert(key, value);
            }
            pairs
        })
}

/// Maps near the bounds of the whole: 25–60 keys, mostly long values (16 KiB is about 33 values
/// of 500 characters, fewer when JSON escapes them).
fn big_metadata_map() -> impl Strategy<Value = Model> {
    let long = prop_oneof![
        4 => (200..=500usize).prop_map(|n| "x".repeat(n)),
        1 => (100..=500usize, proptest::sample::select(vec!['"', '\n', '\u{1}']))
            .prop_map(|(n, c)| c.to_string().repeat(n)),
        1 => Just(String::new()),
    ];
    proptest::collection::btree_map(metadata_key(), long, 25..=60)
}

fn metadata_patch() -> impl Strategy<Value = MetadataPatch> {
    prop_oneof![
        1 => Just(MetadataPatch::Clear),
        6 => metadata_map(8).prop_map(MetadataPatch::Merge),
        3 => metadata_map(60).prop_map(MetadataPatch::Merge),
        1 => big_metadata_map().prop_map(MetadataPatch::Merge),
    ]
}

/// One step: the domain and the model must agree on accepting or refusing, on why, and on the
/// result.
fn step(
    metadata: &Metadata,
    model: &Model,
    patch: MetadataPatch,
) -> Result<Option<Metadata>, TestCaseError> {
    let expected = model_patch(model, &patch);
    match (metadata.patched(patch), expected) {
        (Ok(next), Ok(expected)) => {
            prop_assert_eq!(next.pairs(), &expected);
            assert_bounds(next.pairs())?;
            Ok(Some(next))
        }
        (Err(errors), Err(expected)) => {
            prop_assert!(!errors.is_empty());
            prop_assert!(errors.iter().all(|e| !e.message.is_empty()));
            let mut got = refusal_of(&errors);
            if let Refusal::Pairs(keys) = &mut got {
                keys.sort();
            }
            prop_assert_eq!(got, expected);
            Ok(None)
        }
        (Ok(next), Err(expected)) => Err(TestCaseError::fail(format!(
            "accepted {:?}, the model refuses: {expected:?}",
            next.pairs()
        ))),
        (Err(errors), Ok(_)) => Err(TestCaseError::fail(format!(
            "refused with {errors:?}, the model accepts"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn metadata_on_create_matches_the_model(
        pairs in prop_oneof![metadata_map(60), big_metadata_map()],
    ) {
        let expected = model_patch(&Model::new(), &MetadataPatch::Merge(pairs.clone()));
        match (Metadata::from_input(pairs), expected) {
            (Ok(metadata), Ok(expected)) => {
                prop_assert_eq!(metadata.pairs(), &expected);
                assert_bounds(metadata.pairs())?;
            }
            (Err(errors), Err(expected)) => {
                let mut got = refusal_of(&errors);
                if let Refusal::Pairs(keys) = &mut got {
                    keys.sort();
                }
                prop_assert_eq!(got, expected);
            }
            (got, expected) => prop_assert!(false, "domain {got:?}, model {expected:?}"),
        }
    }

    #[test]
    fn metadata_patch_sequences_match_the_model(
        initial in metadata_map(20),
        patches in proptest::collection::vec(metadata_patch(), 1..12),
    ) {
        let mut model = Model::new();
        let mut metadata = Metadata::default();
        if let Some(next) = step(&metadata, &model, MetadataPatch::Merge(initial))? {
            model = next.pairs().clone();
            metadata = next;
        }
        for patch in patches {
            if let Some(next) = step(&metadata, &model, patch)? {
                model = next.pairs().clone();
                metadata = next;
            }
            // A refused patch changes nothing: both sides keep what they had.
            prop_assert_eq!(metadata.pairs(), &model);
        }
    }

    #[test]
    fn metadata_clear_always_succeeds_and_empties(pairs in metadata_map(20)) {
        let current = Metadata::from_stored(pairs);
        prop_assert_eq!(current.patched(MetadataPatch::Clear), Ok(Metadata::default()));
    }

    #[test]
    fn metadata_merge_never_panics_on_arbitrary_strings(
        stored in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..60),
        sent in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..60),
    ) {
        // Stored data is trusted as written; patching it with anything must still answer, and an
        // accepted merge applies every sent key.
        let current = Metadata::from_stored(stored);
        if let Ok(next) = current.patched(MetadataPatch::Merge(sent.clone())) {
            for (key, value) in &sent {
                if value.is_empty() {
                    prop_assert!(!next.pairs().contains_key(key), "{key:?} kept");
                } else {
                    prop_assert_eq!(next.pairs().get(key), Some(value));
                }
            }
        }
    }
}
