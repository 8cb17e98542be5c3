//! Races for real on PostgreSQL, through two servers with pools of their own: many concurrent
//! suspend / resume / patch / archive calls on one organization end in a state some serial order
//! gives, nothing changes after archive, and archive leaves no live key even while keys are being
//! minted, and a child's reservations racing its suspend are either held before it or refused by
//! the kill switch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

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

/// A child funded with 10,000 credits, and a key of it that reserves on the `unlimited` tier
/// (the standard tier's `work` budget, 20 a minute, would answer 429 long before any race).
async fn metered_child(app: &TestApp, name: &str) -> (String, String) {
    let child = app.create_child(name).await;
    app.allocate(&child, 10_000).await;
    let (key_id, key) = app.mint_key(&child, &["credits:write"]).await;
    app.control_plane()
        .set_rate_limit_tier(
            domain::ApiKeyId::parse(&key_id).unwrap(),
            domain::api_key::RateLimitTier::Unlimited,
        )
        .await
        .unwrap();
    (child, key)
}

/// Reserves one credit at a time with `key` until the kill switch refuses it, at most 500 times;
/// each reservation held adds a permit to `held_so_far`. Returns when each request started and
/// what it was answered.
async fn reserve_until_refused(
    app: Arc<TestApp>,
    key: String,
    held_so_far: Arc<Semaphore>,
) -> Vec<(Instant, Response)> {
    let mut answers = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        let answer = app
            .post(
                "/v1/credits/reservations",
                &key,
                json!({"credits": 1, "description": "race"}),
            )
            .await;
        let status = answer.status.as_u16();
        if status == 201 {
            held_so_far.add_permits(1);
        }
        answers.push((started, answer));
        if status == 503 {
            break;
        }
    }
    answers
}

/// Checks one reserver's answers against the instant the suspend answered: each is a reservation
/// held before it (`201`, counted) or the kill switch naming `suspended` — never a `409`, even for
/// a key admitted an instant before the suspend committed. The reserver must have been stopped
/// by the kill switch: had the suspend waited for the stream of reservations to end (as a row
/// share lock let it), every reserver would have run out of its 500 attempts first.
fn check_reserver(
    answers: &[(Instant, Response)],
    suspend_answered: Instant,
    suspended: &str,
) -> i64 {
    let mut held = 0;
    for (started, answer) in answers {
        match answer.status.as_u16() {
            201 => {
                assert!(
                    *started < suspend_answered,
                    "a reservation that started after the suspend answered was held"
                );
                held += 1;
            }
            503 => {
                let details = answer.assert_error(503, "KILL_SWITCH");
                assert_eq!(details["scope"], "organization");
                assert_eq!(details["organizationId"], suspended);
            }
            other => panic!(
                "a reservation racing the suspend answered {other}: {}",
                answer.body
            ),
        }
    }
    assert_eq!(
        answers.last().map(|(_, a)| a.status.as_u16()),
        Some(503),
        "the reserver ran out of attempts before the kill switch stopped it ({} held)",
        held
    );
    held
}

/// Waits until `n` reservations are held, so the suspend lands inside the stream.
async fn until_held(held_so_far: &Semaphore, n: u32) {
    tokio::time::timeout(Duration::from_secs(30), held_so_far.acquire_many(n))
        .await
        .expect("reservations are held before the suspend")
        .unwrap()
        .forget();
}

/// A child's key reserving through both servers, 8 at a time, while its parent suspends it
/// (API.md §3, §6.4): every reservation is held before the suspend commits or refused by the
/// kill switch; the suspend is not held up by the stream; the child's reserved credits are
/// exactly the reservations held; resume lets the key reserve again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_racing_a_suspend_are_held_before_it_or_refused_by_the_kill_switch() {
    let (a, b) = two_servers().await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    a.grant(&a.admin_org, 1_000_000).await;
    for round in 0..5 {
        let (child, key) = metered_child(&a, &format!("Metered {round}")).await;
        let held_so_far = Arc::new(Semaphore::new(0));
        let reservers: Vec<_> = (0..8)
            .map(|r| {
                let app = Arc::clone(if r % 2 == 0 { &a } else { &b });
                tokio::spawn(reserve_until_refused(app, key.clone(), held_so_far.clone()))
            })
            .collect();
        until_held(&held_so_far, 4).await;
        b.post_empty(&format!("/v1/organizations/{child}/suspend"), &b.admin_key)
            .await
            .assert_ok(200);
        let suspend_answered = Instant::now();

        let mut held = 0;
        for reserver in reservers {
            held += check_reserver(&reserver.await.unwrap(), suspend_answered, &child);
        }
        let summary = a
            .get(&format!("/v1/organizations/{child}"), &a.admin_key)
            .await
            .assert_ok(200)["summary"]
            .clone();
        assert_eq!(summary["reservedCredits"], held, "round {round}");
        assert_eq!(summary["available"], 10_000 - held);

        a.post_empty(&format!("/v1/organizations/{child}/resume"), &a.admin_key)
            .await
            .assert_ok(200);
        b.post(
            "/v1/credits/reservations",
            &key,
            json!({"credits": 1, "description": "after resume"}),
        )
        .await
        .assert_ok(201);
    }
}

/// The operator's platform-level switch (API.md §9) on a partner whose four children reserve
/// through both servers: every child's key is stopped by the kill switch naming the partner, the
/// suspend is not held up by the children's reservations (each of which reads the partner's
/// status), and each child's reserved credits are exactly its reservations held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operators_suspend_of_a_partner_is_not_held_up_by_its_childrens_reservations() {
    let (a, b) = two_servers().await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    a.grant(&a.admin_org, 1_000_000).await;
    let mut children = Vec::new();
    for c in 0..4 {
        children.push(metered_child(&a, &format!("Metered {c}")).await);
    }
    let held_so_far = Arc::new(Semaphore::new(0));
    let reservers: Vec<_> = (0..8)
        .map(|r| {
            let app = Arc::clone(if r % 2 == 0 { &a } else { &b });
            let key = children[r % children.len()].1.clone();
            tokio::spawn(reserve_until_refused(app, key, held_so_far.clone()))
        })
        .collect();
    until_held(&held_so_far, 4).await;
    a.suspend_top_level(&a.admin_org).await;
    let suspend_answered = Instant::now();

    let mut held = vec![0; children.len()];
    for (r, reserver) in reservers.into_iter().enumerate() {
        held[r % children.len()] +=
            check_reserver(&reserver.await.unwrap(), suspend_answered, &a.admin_org);
    }
    a.control_plane()
        .resume_top_level(domain::OrganizationId::parse(&a.admin_org).unwrap())
        .await
        .unwrap();
    for ((child, _), held) in children.iter().zip(held) {
        let summary = b
            .get(&format!("/v1/organizations/{child}"), &b.admin_key)
            .await
            .assert_ok(200)["summary"]
            .clone();
        assert_eq!(summary["reservedCredits"], held);
    }
}
