//! `Idempotency-Key` (API.md §1.6).

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::store_tests;
use crate::support::{Response, Store, TestApp};

store_tests!(
    a_retry_replays_the_first_answer_and_runs_nothing,
    a_key_reused_for_another_request_is_a_conflict,
    refusals_are_replayed_too,
    keys_are_scoped_per_api_key_and_route,
    a_malformed_key_is_invalid,
    minting_replays_the_same_secret,
    an_in_place_rotation_replays_the_same_secret,
    records_expire_after_24_hours,
    every_mutating_route_accepts_the_header,
);

const HEADER: &str = "Idempotency-Key";

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
    idem: &str,
) -> Response {
    app.request_with_headers(method, path, Some(key), body, &[(HEADER, idem)])
        .await
}

fn fresh() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn children(app: &TestApp) -> usize {
    let listed = app.get("/v1/organizations?limit=200", &app.admin_key).await;
    listed.assert_ok(200)["items"].as_array().unwrap().len()
}

async fn a_retry_replays_the_first_answer_and_runs_nothing(app: TestApp) {
    let key = fresh();
    let body = json!({"name": "Acme", "metadata": {"plan": "growth"}});
    let first = send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        Some(body.clone()),
        &key,
    )
    .await;
    first.assert_ok(201);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    for _ in 0..3 {
        let again = send(
            &app,
            Method::POST,
            "/v1/organizations",
            &app.admin_key,
            Some(body.clone()),
            &key,
        )
        .await;
        assert_eq!(again.status, 201);
        assert_eq!(again.body, first.body, "replayed verbatim");
        assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    }
    assert_eq!(children(&app).await, 1);

    // A suspend replayed after a resume answers what the suspend answered, and changes nothing.
    let id = first.body["id"].as_str().unwrap().to_owned();
    let suspend_key = fresh();
    let suspend = format!("/v1/organizations/{id}/suspend");
    let suspended = send(
        &app,
        Method::POST,
        &suspend,
        &app.admin_key,
        None,
        &suspend_key,
    )
    .await;
    app.post_empty(&format!("/v1/organizations/{id}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    let replay = send(
        &app,
        Method::POST,
        &suspend,
        &app.admin_key,
        None,
        &suspend_key,
    )
    .await;
    assert_eq!(replay.body, suspended.body);
    let now = app
        .get(&format!("/v1/organizations/{id}"), &app.admin_key)
        .await;
    assert_eq!(
        now.assert_ok(200)["status"],
        "active",
        "the replay did not suspend again"
    );
}

async fn a_key_reused_for_another_request_is_a_conflict(app: TestApp) {
    let key = fresh();
    send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        Some(json!({"name": "A"})),
        &key,
    )
    .await
    .assert_ok(201);
    let other = send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        Some(json!({"name": "B"})),
        &key,
    )
    .await;
    other.assert_error(409, "IDEMPOTENCY_CONFLICT");
    assert_eq!(children(&app).await, 1);
}

async fn refusals_are_replayed_too(app: TestApp) {
    let key = fresh();
    let bad = json!({"name": ""});
    let first = send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        Some(bad.clone()),
        &key,
    )
    .await;
    first.assert_error(422, "VALIDATION");
    let again = send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        Some(bad),
        &key,
    )
    .await;
    // The replay keeps the body, but its requestId is this response's (it equals X-Request-Id).
    again.assert_error(422, "VALIDATION");
    let mut expected = first.body.clone();
    expected["error"]["requestId"] = again.body["error"]["requestId"].clone();
    assert_eq!(again.body, expected);
    assert_ne!(
        again.body["error"]["requestId"],
        first.body["error"]["requestId"]
    );
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
}

async fn keys_are_scoped_per_api_key_and_route(app: TestApp) {
    let key = fresh();
    let (_, other_admin) = app.new_partner("Other").await;
    for admin in [&app.admin_key, &other_admin] {
        send(
            &app,
            Method::POST,
            "/v1/organizations",
            admin,
            Some(json!({"name": "Same"})),
            &key,
        )
        .await
        .assert_ok(201);
    }
    let child = app.create_child("Target").await;
    // The same key on another route of the same API key is another scope.
    send(
        &app,
        Method::POST,
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
        None,
        &key,
    )
    .await
    .assert_ok(200);
}

async fn a_malformed_key_is_invalid(app: TestApp) {
    for bad in ["nope", "123", "9b2d5c1e0c4f4e8a9f2b3c4d5e6f7a8b"] {
        let refused = send(
            &app,
            Method::POST,
            "/v1/organizations",
            &app.admin_key,
            Some(json!({"name": "x"})),
            bad,
        )
        .await;
        assert_eq!(
            refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
            HEADER
        );
    }
    assert_eq!(children(&app).await, 0);
}

async fn minting_replays_the_same_secret(app: TestApp) {
    let child = app.create_child("Acme").await;
    let key = fresh();
    let path = format!("/v1/organizations/{child}/api-keys");
    let body = json!({"name": "sync", "scopes": ["credits:read"]});
    let first = send(
        &app,
        Method::POST,
        &path,
        &app.admin_key,
        Some(body.clone()),
        &key,
    )
    .await;
    let again = send(&app, Method::POST, &path, &app.admin_key, Some(body), &key).await;
    assert_eq!(again.body["secret"], first.assert_ok(201)["secret"]);
    let listed = app.get(&path, &app.admin_key).await;
    assert_eq!(listed.assert_ok(200)["items"].as_array().unwrap().len(), 1);
}

/// A retried in-place rotation (API.md §5.4) replays the secret it minted — recorded with the
/// change — and the key is rotated once: that secret is the one that works.
async fn an_in_place_rotation_replays_the_same_secret(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (_, rotator) = app.mint_key(&child, &["keys:write"]).await;
    let (target, old_secret) = app.mint_key(&child, &["credits:read"]).await;
    let key = fresh();
    let path = format!("/v1/api-keys/{target}/rotate");
    let first = send(&app, Method::POST, &path, &rotator, None, &key).await;
    let again = send(&app, Method::POST, &path, &rotator, None, &key).await;
    let secret = first.assert_ok(200)["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        again.assert_ok(200),
        first.assert_ok(200),
        "replayed verbatim"
    );
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    app.get("/v1/whoami", &secret).await.assert_ok(200);
    app.get("/v1/whoami", &old_secret)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    // Rotated once: one rotation in the audit log.
    let log = app
        .request_with_headers(
            Method::GET,
            "/v1/audit-log?eventType=api_key.rotated",
            Some(&app.admin_key),
            None,
            &[("X-Layers-Organization", &child)],
        )
        .await;
    assert_eq!(log.assert_ok(200)["items"].as_array().unwrap().len(), 1);
}

async fn records_expire_after_24_hours(app: TestApp) {
    let key = fresh();
    let body = Some(json!({"name": "Acme"}));
    send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        body.clone(),
        &key,
    )
    .await
    .assert_ok(201);
    app.clock
        .advance(time::Duration::hours(24) + time::Duration::seconds(1));
    assert!(
        app.control_plane()
            .purge_idempotency_records()
            .await
            .unwrap()
            >= 1
    );
    let after = send(
        &app,
        Method::POST,
        "/v1/organizations",
        &app.admin_key,
        body,
        &key,
    )
    .await;
    after.assert_ok(201);
    assert!(
        !after.headers.contains_key("idempotent-replayed"),
        "a new request after the window"
    );
    assert_eq!(children(&app).await, 2);
}

async fn every_mutating_route_accepts_the_header(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (key_id, _) = app.mint_key(&child, &["keys:write"]).await;
    let (rotatable, _) = app.mint_key(&child, &["*"]).await;
    let (own, own_secret) = app.mint_key(&child, &["keys:write"]).await;
    let calls: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::PATCH,
            format!("/v1/organizations/{child}"),
            Some(json!({"name": "Acme 2"})),
            app.admin_key.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/organizations/{child}/suspend"),
            None,
            app.admin_key.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/organizations/{child}/resume"),
            None,
            app.admin_key.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/organizations/{child}/api-keys/{rotatable}/rotate"),
            None,
            app.admin_key.as_str(),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{child}/api-keys/{key_id}"),
            None,
            app.admin_key.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/api-keys/{own}/rotate"),
            None,
            own_secret.as_str(),
        ),
    ];
    for (method, path, body, caller) in calls {
        let key = fresh();
        let first = send(&app, method.clone(), &path, caller, body.clone(), &key).await;
        assert!(first.status.is_success(), "{method} {path}: {}", first.body);
        // After an in-place rotation the caller's old secret is gone; its new one is the same API
        // key (same id), so the same scope.
        let caller_now = if path.ends_with(&format!("{own}/rotate")) {
            first.body["secret"].as_str().unwrap().to_owned()
        } else {
            caller.to_owned()
        };
        let again = send(&app, method.clone(), &path, &caller_now, body, &key).await;
        assert_eq!(again.body, first.body, "{method} {path}");
        assert_eq!(
            again.headers.get("idempotent-replayed").unwrap(),
            "true",
            "{method} {path}"
        );
    }
    let archive = fresh();
    let first = send(
        &app,
        Method::DELETE,
        &format!("/v1/organizations/{child}"),
        &app.admin_key,
        None,
        &archive,
    )
    .await;
    let again = send(
        &app,
        Method::DELETE,
        &format!("/v1/organizations/{child}"),
        &app.admin_key,
        None,
        &archive,
    )
    .await;
    assert_eq!(
        again.body,
        first.assert_ok(200).clone(),
        "the archive replays its counts, not zeros"
    );
}

/// Identical requests with one key, sent at the same moment, many times, for real on PostgreSQL:
/// exactly one effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_identical_requests_have_exactly_one_effect() {
    let app = TestApp::spawn(Store::Postgres).await;
    for round in 0..10 {
        let key = fresh();
        let body = json!({"name": format!("Racer {round}")});
        let sends = (0..8).map(|_| {
            send(
                &app,
                Method::POST,
                "/v1/organizations",
                &app.admin_key,
                Some(body.clone()),
                &key,
            )
        });
        let answers = join_all(sends).await;
        let mut created = None;
        for answer in &answers {
            match answer.status.as_u16() {
                201 => {
                    let id = answer.body["id"].clone();
                    assert!(
                        created.get_or_insert(id.clone()) == &id,
                        "round {round}: two different orgs answered"
                    );
                }
                409 => assert_eq!(answer.body["error"]["code"], "CONFLICT", "round {round}"),
                other => panic!("round {round}: {other} {}", answer.body),
            }
        }
        assert!(created.is_some(), "round {round}: no request ran");
    }
    assert_eq!(children(&app).await, 10, "one child per round, never two");

    // And one key, never two.
    let child = app.create_child("Key racer").await;
    let path = format!("/v1/organizations/{child}/api-keys");
    for round in 0..10 {
        let key = fresh();
        let body = json!({"name": format!("racer {round}"), "scopes": ["*"]});
        let sends = (0..8).map(|_| {
            send(
                &app,
                Method::POST,
                &path,
                &app.admin_key,
                Some(body.clone()),
                &key,
            )
        });
        let answers = join_all(sends).await;
        let secrets: std::collections::HashSet<_> = answers
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| a.body["secret"].clone())
            .collect();
        assert_eq!(secrets.len(), 1, "round {round}: one secret, replayed");
        assert!(
            answers.iter().all(|a| a.status == 201 || a.status == 409),
            "round {round}"
        );
    }
    let listed = app.get(&format!("{path}?limit=100"), &app.admin_key).await;
    assert_eq!(
        listed.assert_ok(200)["items"].as_array().unwrap().len(),
        10,
        "one key per round"
    );
}
