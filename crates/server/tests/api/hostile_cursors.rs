//! Hostile `cursor` values (API.md §1.5) through the HTTP API: the decoder is private to
//! adapters-http, so it is driven the way a client would drive it. Random, near-miss and tampered
//! cursors are always `422 VALIDATION` naming `cursor`, never a 5xx; cursors forged with a valid
//! checksum (docs/decisions.md: the checksum "guards against mistakes, not adversaries") at any
//! position, however extreme, are `200` or `422` — never a 5xx.
//!
//! Property tests run with proptest's `TestRunner` on a blocking thread that drives the async
//! client with `Handle::block_on`, so failures shrink to a minimal cursor. Case counts are kept
//! moderate: every case is one HTTP request, on both stores.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::store_tests;
use crate::support::{Response, TestApp};

store_tests!(
    random_cursors_are_validation_errors,
    tampered_cursors_are_validation_errors,
    forged_cursors_at_extreme_positions_are_never_server_errors,
);

/// Cases per property and store: each case is one request.
const CASES: u32 = 64;

/// Every byte but the unreserved ones percent-encoded, so the server sees exactly `raw`.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A listing of the bootstrap partner with more than one page, so real cursors exist.
struct Listings {
    /// `/v1/organizations` and `/v1/organizations/<child>/api-keys`.
    paths: [String; 2],
    /// A real `nextCursor` of each, in the same order.
    cursors: [String; 2],
}

async fn listings(app: &TestApp) -> Listings {
    for i in 0..3 {
        app.create_child(&format!("cursor child {i}")).await;
    }
    let child = app.create_child("cursor keys").await;
    for _ in 0..3 {
        app.mint_key(&child, &["credits:read"]).await;
    }
    let paths = [
        "/v1/organizations".to_owned(),
        format!("/v1/organizations/{child}/api-keys"),
    ];
    let mut cursors = Vec::new();
    for path in &paths {
        let page = app.get(&format!("{path}?limit=1"), &app.admin_key).await;
        let cursor = page.assert_ok(200)["nextCursor"]
            .as_str()
            .unwrap()
            .to_owned();
        // The real cursor works: whatever is refused below is refused for its content.
        let next = app
            .get(
                &format!("{path}?limit=1&cursor={}", encode(&cursor)),
                &app.admin_key,
            )
            .await;
        next.assert_ok(200);
        cursors.push(cursor);
    }
    Listings {
        paths,
        cursors: cursors.try_into().unwrap(),
    }
}

/// `422 VALIDATION` naming `cursor` (and nothing that hints at a server error).
fn refused_as_cursor(response: &Response, raw: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        response.status.as_u16() == 422,
        "cursor {raw:?}: expected 422, got {} {}",
        response.status,
        response.body
    );
    prop_assert_eq!(&response.body["error"]["code"], &json!("VALIDATION"));
    prop_assert_eq!(
        &response.body["error"]["details"]["fields"][0]["field"],
        &json!("cursor"),
        "cursor {:?}: {}",
        raw,
        response.body
    );
    Ok(())
}

/// Runs `check` on [`CASES`] values of the strategy `make` builds, each with one GET of
/// `path?cursor=<value>`, on a blocking thread (proptest is synchronous; the strategy is built
/// there because boxed strategies are not `Send`); panics with the minimal failing value.
async fn property<F, S>(
    app: &Arc<TestApp>,
    path: &str,
    make: F,
    check: fn(&Response, &str) -> Result<(), TestCaseError>,
) where
    F: FnOnce() -> S + Send + 'static,
    S: Strategy<Value = String>,
{
    let handle = tokio::runtime::Handle::current();
    let app = Arc::clone(app);
    let url_path = path.to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let strategy = make();
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            max_shrink_iters: 256,
            ..Config::default()
        });
        runner
            .run(&strategy, |raw| {
                let url = format!("{url_path}?cursor={}", encode(&raw));
                let response = handle.block_on(app.get(&url, &app.admin_key));
                check(&response, &raw)
            })
            .map_err(|failure| failure.to_string())
    })
    .await
    .unwrap();
    if let Err(failure) = outcome {
        panic!("GET {path}?cursor=…: {failure}");
    }
}

/// Anything at all, base64url text, base64url of random bytes, and base64url of texts shaped like
/// a cursor's content (`<micros>.<uuid>.<checksum>`) with a checksum that cannot be right.
fn random_cursor() -> impl Strategy<Value = String> {
    let shaped = (
        any::<i64>(),
        "[0-9a-f]{32}",
        prop_oneof!["[0-9a-f]{16}", "[0-9a-f]{0,20}", Just(String::new())],
        prop_oneof![Just("."), Just(".."), Just(""), Just(":")],
    )
        .prop_map(|(micros, id, sum, sep)| format!("{micros}{sep}{id}.{sum}"));
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,120}",
        "[A-Za-z0-9+/=]{1,120}",
        proptest::collection::vec(any::<u8>(), 0..96).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        shaped.prop_map(|text| URL_SAFE_NO_PAD.encode(text)),
    ]
}

async fn random_cursors_are_validation_errors(app: TestApp) {
    let app = Arc::new(app);
    let listings = listings(&app).await;
    for path in &listings.paths {
        property(&app, path, random_cursor, refused_as_cursor).await;
    }
    // Values the query-string decoder itself may trip on.
    for raw_query in [
        "cursor=",
        "cursor",
        "cursor=%00",
        "cursor=%FF%FE",
        "cursor=%ZZ",
        "cursor=%",
        "cursor=+",
        "cursor=a%2",
        "cursor=%C3%28",
    ] {
        for path in &listings.paths {
            let response = app
                .get(&format!("{path}?{raw_query}"), &app.admin_key)
                .await;
            let details = response.assert_error(422, "VALIDATION");
            assert_eq!(
                details["fields"][0]["field"], "cursor",
                "{path}?{raw_query}"
            );
        }
    }
}

/// A real cursor, edited: one character replaced, inserted or removed, or the end cut or added
/// to — each edit leaves a different string.
fn tampered(real: String) -> impl Strategy<Value = String> {
    let len = real.len();
    (
        any::<proptest::sample::Index>(),
        0..4u8,
        "[A-Za-z0-9_=+/.-]",
        1..=len.max(1),
    )
        .prop_map(move |(at, edit, c, cut)| {
            let mut s = real.clone();
            let i = at.index(len);
            match edit {
                0 => {
                    let original = &s[i..=i];
                    let replacement = match (original == c, c.as_str()) {
                        (false, c) => c,
                        (true, "A") => "B",
                        (true, _) => "A",
                    };
                    s.replace_range(i..=i, replacement);
                }
                1 => s.insert_str(i, &c),
                2 => {
                    s.remove(i);
                }
                _ => s.truncate(len - cut),
            }
            s
        })
}

async fn tampered_cursors_are_validation_errors(app: TestApp) {
    let app = Arc::new(app);
    let listings = listings(&app).await;
    for (path, real) in listings.paths.iter().zip(&listings.cursors) {
        let real = real.clone();
        property(&app, path, move || tampered(real), refused_as_cursor).await;
    }
    // A cursor of the other listing is foreign to this one.
    let [orgs, keys] = &listings.paths;
    let [org_cursor, key_cursor] = &listings.cursors;
    for (path, foreign) in [(orgs, key_cursor), (keys, org_cursor)] {
        let response = app
            .get(
                &format!("{path}?cursor={}", encode(foreign)),
                &app.admin_key,
            )
            .await;
        let details = response.assert_error(422, "VALIDATION");
        assert_eq!(details["fields"][0]["field"], "cursor", "{path}");
    }
    // Padding, case and alphabet changes of a real cursor.
    for (path, real) in listings.paths.iter().zip(&listings.cursors) {
        for edited in [
            format!("{real}="),
            format!("{real}=="),
            real.to_uppercase(),
            real.to_lowercase(),
            real.replace('-', "+").replace('_', "/"),
            format!(" {real}"),
            format!("{real} "),
            format!("{real}{real}"),
        ] {
            if edited == *real {
                continue;
            }
            let response = app
                .get(
                    &format!("{path}?cursor={}", encode(&edited)),
                    &app.admin_key,
                )
                .await;
            let details = response.assert_error(422, "VALIDATION");
            assert_eq!(details["fields"][0]["field"], "cursor", "{path} {edited:?}");
        }
    }
}

/// A cursor for `list` at (`micros`, `id`), checksummed as docs/decisions.md describes — what an
/// adversary who read the source could send.
fn forge(list: &str, micros: i64, id: uuid::Uuid) -> String {
    let payload = format!("{micros}.{}", id.simple());
    let digest = Sha256::digest(format!("cursor.v1.{list}.{payload}"));
    let sum: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    URL_SAFE_NO_PAD.encode(format!("{payload}.{sum}"))
}

/// Positions in time from one end of `i64` microseconds to the other, with weight on the edges of
/// what the `time` crate (years ±9999) and PostgreSQL (4713 BC – 294276 AD) can represent.
fn extreme_micros() -> impl Strategy<Value = i64> {
    const YEAR: i64 = 31_556_952_000_000;
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        Just(-1),
        // The `time` crate's range, and just outside it.
        Just(-377_705_116_800_000_000),
        Just(-377_705_116_800_000_001),
        Just(253_402_300_799_999_999),
        Just(253_402_300_800_000_000),
        // PostgreSQL's lower bound (4714-11-24 BC) and around it.
        Just(-210_866_803_200_000_000),
        Just(-210_866_803_200_000_001),
        (-10_000i64..10_000).prop_map(|year| (year - 1970) * YEAR),
        any::<i64>(),
    ]
}

fn never_a_server_error(response: &Response, raw: &str) -> Result<(), TestCaseError> {
    let status = response.status.as_u16();
    prop_assert!(
        status == 200 || status == 422,
        "forged cursor {raw:?}: expected 200 or 422, got {status} {}",
        response.body
    );
    if status == 422 {
        refused_as_cursor(response, raw)?;
    } else {
        prop_assert!(response.body["items"].is_array(), "{}", response.body);
    }
    Ok(())
}

async fn forged_cursors_at_extreme_positions_are_never_server_errors(app: TestApp) {
    let app = Arc::new(app);
    let listings = listings(&app).await;
    // The forger must reproduce what the server issues, or the property below would only ever
    // see 422s: decode the real cursor's position and forge it again.
    for (list, real) in ["organizations", "api_keys"].iter().zip(&listings.cursors) {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(real).unwrap()).unwrap();
        let mut parts = text.split('.');
        let micros: i64 = parts.next().unwrap().parse().unwrap();
        let id = uuid::Uuid::try_parse(parts.next().unwrap()).unwrap();
        assert_eq!(
            forge(list, micros, id),
            *real,
            "the cursor format changed (crates/adapters-http/src/cursor.rs): update forge() here"
        );
    }
    for (path, list) in listings.paths.iter().zip(["organizations", "api_keys"]) {
        let list = list.to_owned();
        let strategy = move || {
            (extreme_micros(), any::<u128>())
                .prop_map(move |(micros, id)| forge(&list, micros, uuid::Uuid::from_u128(id)))
        };
        property(&app, path, strategy, never_a_server_error).await;
    }
}
