//! API.md §3 "Immediacy": once suspend has answered, no request by the child's keys is admitted on
//! any server process sharing the store — and once resume has answered, the next one is.

use reqwest::Client;
use serde_json::{json, Value};

use crate::processes::ServerProcess;
use crate::support::{random_key, TestApp};
use adapters_pg::testing::TestDatabase;

async fn call(client: &Client, method: reqwest::Method, url: String, key: &str) -> (u16, Value) {
    let response = client
        .request(method, url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_holds_across_two_server_processes() {
    let database = TestDatabase::create().await.unwrap();
    let admin_key = random_key();
    // Both start at once with the same bootstrap key: start-up must converge, not collide.
    let (a, b) = (
        ServerProcess::spawn(database.url(), &admin_key),
        ServerProcess::spawn(database.url(), &admin_key),
    );
    let (a, b) = (a.ready().await, b.ready().await);
    let client = Client::new();

    let (status, child) = call_json(
        &client,
        &format!("{}/v1/organizations", a.base),
        &admin_key,
        json!({"name": "Acme"}),
    )
    .await;
    assert_eq!(status, 201);
    let child = child["id"].as_str().unwrap().to_owned();
    let (status, minted) = call_json(
        &client,
        &format!("{}/v1/organizations/{child}/api-keys", b.base),
        &admin_key,
        json!({"name": "k", "scopes": ["*"]}),
    )
    .await;
    assert_eq!(status, 201);
    let child_key = minted["secret"].as_str().unwrap().to_owned();

    for round in 0..25 {
        // Suspend through one process; the very next child request through the other: 503.
        let (suspender, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (status, _) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/v1/organizations/{child}/suspend", suspender.base),
            &admin_key,
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/whoami", other.base),
            &child_key,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("KILL_SWITCH")),
            "round {round}: admitted after suspend"
        );

        // Resume through the other; the very next child request through the first: 200.
        let (status, _) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/v1/organizations/{child}/resume", other.base),
            &admin_key,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/whoami", suspender.base),
            &child_key,
        )
        .await;
        assert_eq!(status, 200, "round {round}: refused after resume");
    }
    // A key killed through one process is refused by the other on its very next request, with
    // the key scope, while the organization's other keys keep working there.
    let (status, other) = call_json(
        &client,
        &format!("{}/v1/organizations/{child}/api-keys", a.base),
        &admin_key,
        json!({"name": "keys", "scopes": ["keys:write"]}),
    )
    .await;
    assert_eq!(status, 201);
    let other_key = other["secret"].as_str().unwrap().to_owned();
    let leaked_id = minted["apiKey"]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/api-keys/{leaked_id}/kill", a.base),
        &other_key,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/whoami", b.base),
        &child_key,
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"]["scope"].as_str()),
        (503, Some("key"))
    );
    let (status, _) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/whoami", b.base),
        &other_key,
    )
    .await;
    assert_eq!(status, 200);

    // The parent's keys were never affected, on either process.
    for process in [&a, &b] {
        let (status, _) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/whoami", process.base),
            &admin_key,
        )
        .await;
        assert_eq!(status, 200);
    }
}

async fn call_json(client: &Client, url: &str, key: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The same promise with two in-process servers, each with its own pool: quick to run in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_see_a_suspension_at_once() {
    let first = TestApp::spawn(crate::support::Store::Postgres).await;
    let second = first.another_server().await;
    let child = first.create_child("Acme").await;
    let (_, key) = first.mint_key(&child, &["*"]).await;
    for _ in 0..25 {
        first
            .post_empty(
                &format!("/v1/organizations/{child}/suspend"),
                &first.admin_key,
            )
            .await
            .assert_ok(200);
        second
            .get("/v1/whoami", &key)
            .await
            .assert_error(503, "KILL_SWITCH");
        second
            .post_empty(
                &format!("/v1/organizations/{child}/resume"),
                &second.admin_key,
            )
            .await
            .assert_ok(200);
        first.get("/v1/whoami", &key).await.assert_ok(200);
    }
}

/// A key killed through one server is refused by the other on its very next request, while the
/// organization's other keys keep working there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_holds_across_servers() {
    let first = TestApp::spawn(crate::support::Store::Postgres).await;
    let second = first.another_server().await;
    let child = first.create_child("Acme").await;
    let (leaked, leaked_secret) = first.mint_key(&child, &["credits:read"]).await;
    let (_, other_secret) = first.mint_key(&child, &["keys:write"]).await;
    second
        .get("/v1/whoami", &leaked_secret)
        .await
        .assert_ok(200);
    first
        .post_empty(&format!("/v1/api-keys/{leaked}/kill"), &other_secret)
        .await
        .assert_ok(200);
    let refused = second.get("/v1/whoami", &leaked_secret).await;
    assert_eq!(refused.assert_error(503, "KILL_SWITCH")["scope"], "key");
    second.get("/v1/whoami", &other_secret).await.assert_ok(200);
}

/// The kill switch under load: while a child's keys hammer two servers, the parent suspends it
/// through one. No child request that started after the suspend answered is admitted; after
/// resume answers, none that starts is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_load_nothing_is_admitted_after_suspend_or_refused_after_resume() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let first = TestApp::spawn(crate::support::Store::Postgres).await;
    let second = first.another_server().await;
    let child = first.create_child("Hammering").await;
    let (key_id, key) = first.mint_key(&child, &["credits:read"]).await;
    // The operator lifts its rate limit: this measures the kill switch, not the limiter.
    let key_id = domain::ApiKeyId::parse(&key_id).unwrap();
    first
        .control_plane()
        .set_rate_limit_tier(key_id, domain::api_key::RateLimitTier::Unlimited)
        .await
        .unwrap();
    let bases = Arc::new([first.base.clone(), second.base.clone()]);
    let client = Client::new();
    let stop = Instant::now() + Duration::from_secs(3);
    // Each request: (started, finished, status).
    let load: Vec<_> = (0..8)
        .map(|worker| {
            let (client, key, bases) = (client.clone(), key.clone(), bases.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut i = worker;
                while Instant::now() < stop {
                    let base = &bases[i % 2];
                    i += 1;
                    let started = Instant::now();
                    let status = client
                        .get(format!("{base}/v1/whoami"))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    seen.push((started, Instant::now(), status));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    first
        .post_empty(
            &format!("/v1/organizations/{child}/suspend"),
            &first.admin_key,
        )
        .await
        .assert_ok(200);
    let suspended = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let resuming = Instant::now();
    second
        .post_empty(
            &format!("/v1/organizations/{child}/resume"),
            &second.admin_key,
        )
        .await
        .assert_ok(200);
    let resumed = Instant::now();

    let mut requests = Vec::new();
    for worker in load {
        requests.extend(worker.await.unwrap());
    }
    // While suspended: started after the suspend answered, and answered before the resume was
    // sent (one still in flight when the resume commits may rightly be admitted).
    let while_suspended = |(started, finished, _): &&(Instant, Instant, u16)| {
        *started > suspended && *finished < resuming
    };
    let after_resume = |(started, _, _): &&(Instant, Instant, u16)| *started > resumed;
    let admitted_after_suspend = requests
        .iter()
        .filter(while_suspended)
        .filter(|(_, _, status)| *status == 200)
        .count();
    let refused_after_resume = requests
        .iter()
        .filter(after_resume)
        .filter(|(_, _, status)| *status == 503)
        .count();
    let during = requests.iter().filter(while_suspended).count();
    let after = requests.iter().filter(after_resume).count();
    eprintln!(
        "kill switch under load: {} child requests; {during} started while suspended ({admitted_after_suspend} admitted); {after} after resume ({refused_after_resume} refused)",
        requests.len()
    );
    assert!(
        during > 20 && after > 20,
        "the load ran through both phases ({during}, {after})"
    );
    assert_eq!(
        admitted_after_suspend, 0,
        "child requests admitted after suspend answered"
    );
    assert_eq!(
        refused_after_resume, 0,
        "child requests refused after resume answered"
    );
    assert!(
        requests
            .iter()
            .all(|(_, _, status)| *status == 200 || *status == 503),
        "only 200 or 503"
    );
}
