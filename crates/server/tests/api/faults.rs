//! A server process killed (SIGKILL) in the middle of archives leaves every organization either
//! fully archived — keys revoked, credits swept to the parent — or untouched: never half.

use std::time::Duration;

use serde_json::json;

use crate::processes::ServerProcess;
use crate::support::{Store, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_archive_leaves_each_organization_whole() {
    let app = TestApp::spawn(Store::Postgres).await;
    app.grant(&app.admin_org, 20 * 100).await;
    let mut children = Vec::new();
    for i in 0..20 {
        let child = app.create_child(&format!("Leaving {i}")).await;
        for _ in 0..3 {
            app.mint_key(&child, &["credits:read"]).await;
        }
        app.allocate(&child, 100).await;
        children.push(child);
    }

    // A real process archives them all at once, and is killed as soon as the first answers,
    // while the others are in flight.
    let victim = ServerProcess::spawn(app.database_url().unwrap(), &app.admin_key)
        .ready()
        .await;
    let client = reqwest::Client::new();
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for child in &children {
        let request = client
            .delete(format!("{}/v1/organizations/{child}", victim.base))
            .bearer_auth(&app.admin_key)
            .timeout(Duration::from_secs(10));
        let answers_tx = answers_tx.clone();
        tokio::spawn(async move {
            let ok = request.send().await.is_ok_and(|r| r.status() == 200);
            let _ = answers_tx.send(ok);
        });
    }
    drop(answers_tx);
    let first = answers.recv().await.unwrap_or(false);
    drop(victim); // SIGKILL, then reaped
    let mut answered = usize::from(first);
    while let Some(ok) = answers.recv().await {
        answered += usize::from(ok);
    }

    // Whatever happened, each child is whole: archived with everything, or untouched.
    let (mut archived, mut untouched) = (0, 0);
    for child in &children {
        let got = app
            .get(&format!("/v1/organizations/{child}"), &app.admin_key)
            .await;
        let body = got.assert_ok(200).clone();
        let keys = app
            .get(
                &format!("/v1/organizations/{child}/api-keys"),
                &app.admin_key,
            )
            .await;
        let statuses: Vec<_> = keys.assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["status"].clone())
            .collect();
        match body["status"].as_str().unwrap() {
            "archived" => {
                archived += 1;
                assert!(
                    statuses.iter().all(|s| s == "revoked"),
                    "{child}: archived with a live key"
                );
                assert_eq!(
                    body["summary"]["balance"], 0,
                    "{child}: archived without its sweep"
                );
            }
            "active" => {
                untouched += 1;
                assert!(
                    statuses.iter().all(|s| s == "active"),
                    "{child}: active with a revoked key"
                );
                assert_eq!(body["summary"]["balance"], 100, "{child}: active but swept");
            }
            other => panic!("{child}: {other}"),
        }
    }
    assert!(
        archived >= answered,
        "every archive that answered 200 is archived"
    );
    // Credits are conserved: the parent got back exactly what the archived children held.
    let parent = app.get("/v1/credits", &app.admin_key).await;
    assert_eq!(parent.assert_ok(200)["balance"], archived * 100);
    assert_eq!(archived + untouched, 20);
}

/// SIGTERM under load: the server stops accepting, lets the requests in flight finish, and exits
/// 0 — no request that reached it is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_requests_in_flight_finish() {
    let app = TestApp::spawn(Store::Postgres).await;
    let server = ServerProcess::spawn(app.database_url().unwrap(), &app.admin_key)
        .ready()
        .await;
    // A connection per request: a kept-alive idle connection closed by the shutdown would blur
    // "refused before it reached the server" with "cut off".
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..200 {
        let request = client
            .post(format!("{}/v1/organizations", server.base))
            .bearer_auth(&app.admin_key)
            .json(&json!({"name": format!("under load {i}")}))
            .timeout(Duration::from_secs(30));
        let answers_tx = answers_tx.clone();
        tokio::spawn(async move {
            let _ = answers_tx.send(request.send().await.map(|r| r.status().as_u16()));
        });
    }
    drop(answers_tx);
    // Once some have been answered, the rest are in flight or queued: terminate now.
    for _ in 0..20 {
        answers.recv().await;
    }
    let exit = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let mut created = 20;
    let mut refused_connection = 0;
    while let Some(answer) = answers.recv().await {
        match answer {
            Ok(201) => created += 1,
            Ok(other) => panic!("a request in flight answered {other}"),
            // Sent after the listener closed: never reached the server.
            Err(error) if error.is_connect() => refused_connection += 1,
            Err(error) => panic!("a request was cut off: {error}"),
        }
    }
    // Every create that answered 201 exists; nothing else was half-made.
    let listed = app.get("/v1/organizations?limit=200", &app.admin_key).await;
    assert_eq!(
        listed.assert_ok(200)["items"].as_array().unwrap().len(),
        created
    );
    assert_eq!(created + refused_connection, 200);
}
