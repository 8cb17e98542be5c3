//! Hostile text in request bodies: any Unicode string — control characters and U+0000 included —
//! in every free-text field is either stored and returned exactly (`name` trimmed, API.md §4.1:
//! metadata "returned exactly as stored") or refused with `422 VALIDATION` naming the field; never
//! a 5xx. JSON the server cannot represent as a string (a lone surrogate escape) is `422` too.
//!
//! Property tests on proptest's `TestRunner`, as in `hostile_cursors.rs`; each case is one or two
//! requests, on both stores.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

use crate::store_tests;
use crate::support::{Response, TestApp};

store_tests!(
    any_text_in_any_field_is_stored_exactly_or_refused_never_a_server_error,
    unrepresentable_json_strings_are_validation_errors,
);

const CASES: u32 = 48;

/// Text with what is likely to trip a store or an encoder: U+0000 and other control characters,
/// non-characters, multi-byte and astral characters, and plain anything.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,4}\u{0}[a-z]{0,4}",
        "[\u{0}-\u{1f}\u{7f} a-z]{1,12}",
        "[\u{fffe}\u{ffff}\u{fdd0}\u{feff}\u{200b}\u{2028}\u{1f600}\u{10ffff}a]{1,12}",
        "[\\\\\"'%_;`]{1,12}",
        "(?s).{1,24}",
    ]
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Name,
    MetadataKey,
    MetadataValue,
    BillingEmail,
    PatchedName,
    PatchedMetadataValue,
    KeyName,
    SuspendReason,
}

const FIELDS: [Field; 8] = [
    Field::Name,
    Field::MetadataKey,
    Field::MetadataValue,
    Field::BillingEmail,
    Field::PatchedName,
    Field::PatchedMetadataValue,
    Field::KeyName,
    Field::SuspendReason,
];

/// One case: the request that carries `text` in `field`, then (when it was accepted) a read that
/// must show it exactly as stored.
async fn case(app: &TestApp, child: &str, field: Field, text: &str) -> Result<(), TestCaseError> {
    let key = &app.admin_key;
    let org_path = format!("/v1/organizations/{child}");
    let (method, path, body, name) = match field {
        Field::Name => (
            Method::POST,
            "/v1/organizations".to_owned(),
            json!({"name": text}),
            "name",
        ),
        Field::MetadataKey => (
            Method::POST,
            "/v1/organizations".to_owned(),
            json!({"name": "n", "metadata": {text: "v"}}),
            "metadata",
        ),
        Field::MetadataValue => (
            Method::POST,
            "/v1/organizations".to_owned(),
            json!({"name": "n", "metadata": {"k": text}}),
            "metadata",
        ),
        Field::BillingEmail => (
            Method::POST,
            "/v1/organizations".to_owned(),
            json!({"name": "n", "billingEmail": format!("a{text}@example.com")}),
            "billingEmail",
        ),
        Field::PatchedName => (
            Method::PATCH,
            org_path.clone(),
            json!({"name": text}),
            "name",
        ),
        Field::PatchedMetadataValue => (
            Method::PATCH,
            org_path.clone(),
            json!({"metadata": {"k": text}}),
            "metadata",
        ),
        Field::KeyName => (
            Method::POST,
            format!("{org_path}/api-keys"),
            json!({"name": text, "scopes": ["credits:read"]}),
            "name",
        ),
        Field::SuspendReason => (
            Method::POST,
            format!("{org_path}/suspend"),
            json!({"reason": text}),
            "reason",
        ),
    };
    let response = app
        .request(method.clone(), &path, Some(key), Some(body))
        .await;
    let status = response.status.as_u16();
    prop_assert!(
        status < 500,
        "{method} {path} with {field:?} = {text:?}: {status} {}",
        response.body
    );
    if status == 422 {
        let fields = &response.body["error"]["details"]["fields"];
        let named = fields.as_array().is_some_and(|fields| {
            fields.iter().any(|f| {
                f["field"]
                    .as_str()
                    .is_some_and(|f| f == name || f.starts_with(&format!("{name}.")))
            })
        });
        prop_assert!(
            named,
            "{field:?} = {text:?}: the 422 must name {name}: {}",
            response.body
        );
        return Ok(());
    }
    prop_assert!(
        status == 200 || status == 201,
        "{field:?} = {text:?}: {status} {}",
        response.body
    );
    // Accepted: what is returned, and what a later read shows, is exactly what was sent.
    let stored = stored_view(app, field, &response).await;
    let expected = match field {
        Field::Name | Field::PatchedName | Field::KeyName => json!(text.trim()),
        Field::MetadataKey if text.is_empty() => json!({}),
        Field::MetadataKey => json!({ text: "v" }),
        Field::MetadataValue | Field::PatchedMetadataValue if text.is_empty() => json!({}),
        Field::MetadataValue | Field::PatchedMetadataValue => json!({ "k": text }),
        Field::BillingEmail => json!(format!("a{text}@example.com").trim()),
        Field::SuspendReason => return resume(app, child).await,
    };
    for (what, seen) in [
        ("response", field_of(field, &response.body)),
        ("read", stored),
    ] {
        prop_assert_eq!(
            &seen,
            &expected,
            "{:?} = {:?}: the {} shows something else",
            field,
            text,
            what
        );
    }
    Ok(())
}

fn field_of(field: Field, body: &Value) -> Value {
    match field {
        Field::Name | Field::PatchedName => body["name"].clone(),
        Field::KeyName => body["apiKey"]["name"].clone(),
        Field::MetadataKey | Field::MetadataValue | Field::PatchedMetadataValue => {
            body["metadata"].clone()
        }
        Field::BillingEmail => body["billingEmail"].clone(),
        Field::SuspendReason => Value::Null,
    }
}

/// The field as a later read shows it.
async fn stored_view(app: &TestApp, field: Field, response: &Response) -> Value {
    match field {
        Field::KeyName => {
            let org = response.body["apiKey"]["organizationId"].as_str().unwrap();
            let id = &response.body["apiKey"]["id"];
            let list = app
                .get(
                    &format!("/v1/organizations/{org}/api-keys?limit=100"),
                    &app.admin_key,
                )
                .await;
            let items = list.body["items"].as_array().cloned().unwrap_or_default();
            items
                .into_iter()
                .find(|k| k["id"] == *id)
                .map(|k| k["name"].clone())
                .unwrap_or(Value::Null)
        }
        _ => {
            let id = response.body["id"].as_str().unwrap();
            let read = app
                .get(&format!("/v1/organizations/{id}"), &app.admin_key)
                .await;
            field_of(field, &read.body)
        }
    }
}

async fn resume(app: &TestApp, child: &str) -> Result<(), TestCaseError> {
    let path = format!("/v1/organizations/{child}/resume");
    let response = app.post_empty(&path, &app.admin_key).await;
    prop_assert_eq!(response.status.as_u16(), 200, "{}", response.body);
    Ok(())
}

async fn any_text_in_any_field_is_stored_exactly_or_refused_never_a_server_error(app: TestApp) {
    let child = app.create_child("hostile bodies").await;
    let app = Arc::new(app);
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            max_shrink_iters: 256,
            ..Config::default()
        });
        let strategy = (proptest::sample::select(FIELDS.to_vec()), hostile_text());
        runner
            .run(&strategy, |(field, text)| {
                handle.block_on(case(&app, &child, field, &text))
            })
            .map_err(|failure| failure.to_string())
    })
    .await
    .unwrap();
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Bodies whose JSON strings have no Unicode meaning: a lone surrogate escape, in each field.
async fn unrepresentable_json_strings_are_validation_errors(app: TestApp) {
    let child = app.create_child("hostile json").await;
    let cases = [
        (
            "/v1/organizations".to_owned(),
            r#"{"name": "a\ud800b"}"#,
            "name",
        ),
        (
            "/v1/organizations".to_owned(),
            r#"{"name": "n", "metadata": {"\udfff": "v"}}"#,
            "metadata",
        ),
        (
            "/v1/organizations".to_owned(),
            r#"{"name": "n", "metadata": {"k": "\ud83d"}}"#,
            "metadata",
        ),
        (
            format!("/v1/organizations/{child}/api-keys"),
            r#"{"name": "\ud800", "scopes": ["*"]}"#,
            "name",
        ),
        (
            format!("/v1/organizations/{child}/suspend"),
            r#"{"reason": "\udc00"}"#,
            "reason",
        ),
    ];
    let client = reqwest::Client::new();
    for (path, raw, field) in cases {
        let response = client
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 422, "{path} {raw}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION", "{body}");
        let named = body["error"]["details"]["fields"][0]["field"]
            .as_str()
            .unwrap_or_default();
        assert!(
            named == field || named.starts_with(&format!("{field}.")) || named == "body",
            "{path} {raw}: names {named:?}"
        );
    }
}
