//! Races for real on PostgreSQL, through two servers with pools of their own: many concurrent
//! suspend / resume / patch / archive calls on one organization end in a state some serial order
//! gives, nothing changes after archive, and archive leaves no live key even while keys are being
//! minted.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{Response, Store, TestApp};

async fn two_servers() -> (TestApp, TestApp) {
    let first = TestApp::spawn(Store::Postgres).await;
    let second = first.another_server().await;
    (first, second)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Suspend,
    Resume,
    Patch,
    Archive,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lifecycle_calls_serialize() {
    let (a, b) = two_servers().await;
    for round in 0..3 {
        let child = a.create_child(&format!("Racer {round}")).await;
        let mut calls = Vec::new();
        for i in 0..40 {
            let action = match i % 9 {
                0 | 3 | 6 => Action::Suspend,
                1 | 4 | 7 => Action::Resume,
                2 | 5 => Action::Patch,
                _ => Action::Archive,
            };
            let app = if i % 2 == 0 { &a } else { &b };
            let child = child.clone();
            calls.push(async move {
                let response = match action {
                    Action::Suspend => {
                        app.post_empty(
                            &format!("/v1/organizations/{child}/suspend"),
                            &app.admin_key,
                        )
                        .await
                    }
                    Action::Resume => {
                        app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
                            .await
                    }
                    Action::Patch => {
                        app.patch(
                            &format!("/v1/organizations/{child}"),
                            &app.admin_key,
                            json!({"metadata": {format!("k{i}"): "v"}}),
                        )
                        .await
                    }
                    Action::Archive => {
                        app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
                            .await
                    }
                };
                (action, response)
            });
        }
        let results = join_all(calls).await;
        check_serializable(&a, &child, results).await;
    }
}

/// Every answer is one a serial order would give: each suspend and resume answers the state it
/// asked for, two answers written at one instant are the same state, every archive answers the
/// one archive instant, nothing was written after it, and no patch was lost to a concurrent write.
async fn check_serializable(app: &TestApp, child: &str, results: Vec<(Action, Response)>) {
    let final_state = app
        .get(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await;
    let final_state = final_state.assert_ok(200).clone();
    assert_eq!(
        final_state["status"], "archived",
        "an archive was among the calls"
    );
    let archived_at = final_state["archivedAt"].as_str().unwrap().to_owned();

    // The state each answer shows, keyed by the instant it was written (updatedAt).
    let mut states: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (action, response) in &results {
        match (action, response.status.as_u16()) {
            (Action::Archive, 200) => {
                assert_eq!(
                    response.body["archivedAt"], archived_at,
                    "one archive instant for everyone"
                );
            }
            (_, 200) => {
                let body = &response.body;
                let status = body["status"].as_str().unwrap().to_owned();
                let updated_at = body["updatedAt"].as_str().unwrap().to_owned();
                assert!(
                    updated_at <= archived_at,
                    "{action:?} answered a state written after the archive: {body}"
                );
                if let Some((seen, seen_body)) = states.get(&updated_at) {
                    assert_eq!(
                        (seen, seen_body),
                        (&status, body),
                        "two different states written at one instant"
                    );
                }
                match action {
                    Action::Suspend => assert_eq!(status, "suspended"),
                    Action::Resume => assert_eq!(status, "active"),
                    _ => {}
                }
                states.insert(updated_at, (status, body.clone()));
            }
            (Action::Patch | Action::Suspend | Action::Resume, 409) => {
                assert_eq!(response.body["error"]["details"]["status"], "archived");
            }
            (_, other) => panic!("{action:?} answered {other}: {}", response.body),
        }
    }
    // Metadata only grows between archive-free writes: each later state keeps every earlier key,
    // so no patch was lost to a concurrent suspend or resume (no lost update).
    let mut previous_keys = 0;
    for (_, body) in states.values() {
        let keys = body["metadata"].as_object().unwrap().len();
        assert!(
            keys >= previous_keys,
            "a later state lost metadata written earlier: {body}"
        );
        previous_keys = keys;
    }
    let final_keys = final_state["metadata"].as_object().unwrap().len();
    let patches_applied = results
        .iter()
        .filter(|(action, response)| *action == Action::Patch && response.status == 200)
        .count();
    assert_eq!(
        final_keys, patches_applied,
        "every patch that answered 200 is in the final state"
    );
    check_one_audit_event_per_write(app, child, &states, &final_state).await;
}

/// Each write that happened — every distinct `updatedAt` answered, the archive included, the
/// creation excluded — left exactly one audit event; the no-ops (a suspend of a suspended
/// organization, an archive answered again) left none.
async fn check_one_audit_event_per_write(
    app: &TestApp,
    child: &str,
    states: &BTreeMap<String, (String, Value)>,
    final_state: &Value,
) {
    let created_at = final_state["createdAt"].as_str().unwrap();
    let writes = states.keys().filter(|at| *at != created_at).count() + 1;
    let listed = app
        .request_with_headers(
            Method::GET,
            "/v1/audit-log?limit=200",
            Some(&app.admin_key),
            None,
            &[("X-Layers-Organization", child)],
        )
        .await;
    let events = listed.assert_ok(200)["items"].as_array().unwrap().clone();
    let lifecycle: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .filter(|t| {
            matches!(
                *t,
                "organization.suspended"
                    | "organization.resumed"
                    | "organization.archived"
                    | "organization.updated"
            )
        })
        .collect();
    assert_eq!(
        lifecycle.len(),
        writes,
        "one audit event per applied write: {lifecycle:?}"
    );
    assert_eq!(
        lifecycle
            .iter()
            .filter(|t| **t == "organization.archived")
            .count(),
        1
    );
    // Transitions alternate: every suspended/resumed event goes from the status the previous
    // one left.
    let mut status = "active";
    for event in events.iter().rev() {
        let data = &event["data"];
        match event["eventType"].as_str().unwrap() {
            "organization.suspended" | "organization.resumed" | "organization.archived" => {
                assert_eq!(data["fromStatus"], status, "{event}");
                status = data["toStatus"].as_str().unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(status, "archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_revokes_every_key_while_keys_are_being_minted() {
    let (a, b) = two_servers().await;
    for round in 0..3 {
        let child = a.create_child(&format!("Leaving {round}")).await;
        let mut mints = Vec::new();
        for i in 0..24 {
            let app = if i % 2 == 0 { &a } else { &b };
            let path = format!("/v1/organizations/{child}/api-keys");
            mints.push(async move {
                app.request(
                    Method::POST,
                    &path,
                    Some(&app.admin_key),
                    Some(json!({"name": format!("k{i}"), "scopes": ["*"]})),
                )
                .await
            });
        }
        let archive = async {
            b.delete(&format!("/v1/organizations/{child}"), &b.admin_key)
                .await
        };
        let (minted, archived) = tokio::join!(join_all(mints), archive);
        let report = archived.assert_ok(200).clone();

        let mut secrets = Vec::new();
        for response in &minted {
            match response.status.as_u16() {
                201 => secrets.push(response.body["secret"].as_str().unwrap().to_owned()),
                409 => assert_eq!(response.body["error"]["details"]["status"], "archived"),
                other => panic!("mint answered {other}: {}", response.body),
            }
        }
        assert_eq!(
            report["revokedApiKeys"],
            secrets.len(),
            "archive revoked exactly the keys minted before it"
        );
        for secret in &secrets {
            a.get("/v1/whoami", secret)
                .await
                .assert_error(401, "UNAUTHENTICATED");
        }
        let listed = a
            .get(
                &format!("/v1/organizations/{child}/api-keys?limit=100"),
                &a.admin_key,
            )
            .await;
        let keys = listed.assert_ok(200)["items"].as_array().unwrap().clone();
        assert_eq!(keys.len(), secrets.len());
        assert!(
            keys.iter().all(|k| k["status"] == "revoked"),
            "no live key in an archived organization"
        );
    }
}
