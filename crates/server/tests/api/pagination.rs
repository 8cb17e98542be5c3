use std::collections::HashSet;

use serde_json::Value;

use crate::store_tests;
use crate::support::TestApp;

store_tests!(
    pages_neither_skip_nor_repeat_while_children_are_created,
    limits_and_cursors_are_validated
);

async fn pages_neither_skip_nor_repeat_while_children_are_created(app: TestApp) {
    let mut originals = Vec::new();
    for i in 0..11 {
        originals.push(app.create_child(&format!("child {i}")).await);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/organizations?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get(&path, &app.admin_key).await;
        let body = page.assert_ok(200).clone();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        pages += 1;
        // Newer children appear between pages; they sort before the cursor and must not disturb it.
        app.create_child(&format!("interloper {pages}")).await;
        match &body["nextCursor"] {
            Value::Null => break,
            Value::String(cursor) => path = format!("/v1/organizations?limit=3&cursor={cursor}"),
            other => panic!("nextCursor must be a string or null: {other}"),
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nothing repeated");
    originals.reverse();
    assert_eq!(
        seen, originals,
        "every original child, newest first, none skipped"
    );
    assert_eq!(pages, 4);
}

async fn limits_and_cursors_are_validated(app: TestApp) {
    for i in 0..3 {
        app.create_child(&format!("c{i}")).await;
    }
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "cursor=garbage",
        "limit=1&limit=2",
        "limt=2",
    ] {
        let response = app
            .get(&format!("/v1/organizations?{query}"), &app.admin_key)
            .await;
        response.assert_error(422, "VALIDATION");
    }
    let first = app.get("/v1/organizations?limit=1", &app.admin_key).await;
    let cursor = first.assert_ok(200)["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[2] = if tampered[2] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused = app
        .get(
            &format!("/v1/organizations?cursor={tampered}"),
            &app.admin_key,
        )
        .await;
    assert_eq!(
        refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "cursor"
    );
    let child = first.body["items"][0]["id"].as_str().unwrap().to_owned();
    let wrong_list = app
        .get(
            &format!("/v1/organizations/{child}/api-keys?cursor={cursor}"),
            &app.admin_key,
        )
        .await;
    wrong_list.assert_error(422, "VALIDATION");
    let all = app.get("/v1/organizations?limit=200", &app.admin_key).await;
    assert_eq!(all.assert_ok(200)["items"].as_array().unwrap().len(), 3);
}
