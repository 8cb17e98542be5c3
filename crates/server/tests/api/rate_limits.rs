//! Rate limits (API.md §1.7, docs/rate-limits.md): per key and endpoint class, by the key's tier.
//! Child keys minted for `live` start on `standard`: 120 reads, 60 writes a minute, refilled one
//! read every 0.5 s — so a refused request is admitted again a second later.

use std::time::{Duration, Instant};

use serde_json::json;
use server::Config;

use crate::support::{random_key, Response, TestApp};

const RATE_LIMIT_HEADERS: [&str; 4] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-endpoint-class",
];

/// The interval at which a `standard` key's read budget refills.
const STANDARD_READ_INTERVAL: Duration = Duration::from_millis(500);

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap())
}

#[track_caller]
fn number(response: &Response, name: &str) -> u64 {
    header(response, name)
        .unwrap_or_else(|| panic!("no {name} on a {} response", response.status))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a whole number"))
}

#[track_caller]
fn class(response: &Response) -> &str {
    header(response, "x-ratelimit-endpoint-class").expect("an endpoint class")
}

/// A fresh `standard` key (a `live` key of a new child of the bootstrap partner).
async fn standard_key(app: &TestApp) -> (String, String) {
    let child = app.create_child("Rate-limited customer").await;
    let (_, key) = app.mint_key(&child, &["*"]).await;
    (child, key)
}

/// Reads with `key` until refused; every one of the first 120 must be admitted.
async fn exhaust_reads(app: &TestApp, key: &str) -> Response {
    for i in 0..400 {
        let response = app.get("/v1/whoami", key).await;
        if response.status == 429 {
            assert!(i >= 120, "refused after only {i} reads");
            return response;
        }
        response.assert_ok(200);
    }
    panic!("400 reads in a row were admitted");
}

async fn a_burst_over_the_standard_read_limit_is_refused_until_retry_after(app: TestApp) {
    let (_, key) = standard_key(&app).await;
    let refused = exhaust_reads(&app, &key).await;
    let details = refused.assert_error(429, "RATE_LIMITED");
    assert_eq!(details["endpointClass"], "read");
    assert_eq!(details["limit"], 120);
    let retry_after = number(&refused, "retry-after");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(details["retryAfterSeconds"], retry_after);
    assert_eq!(number(&refused, "x-ratelimit-limit"), 120);
    assert_eq!(number(&refused, "x-ratelimit-remaining"), 0);
    assert!(number(&refused, "x-ratelimit-reset") >= retry_after);
    assert_eq!(class(&refused), "read");

    // A refusal is not counted (the limiter's unit tests show it with a driven clock), so
    // waiting what it said is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let honoured = app.get("/v1/whoami", &key).await;
    honoured.assert_ok(200);
    assert_eq!(class(&honoured), "read");
    assert_eq!(number(&honoured, "x-ratelimit-limit"), 120);
}

async fn remaining_counts_down_by_one_per_request(app: TestApp) {
    let (_, key) = standard_key(&app).await;
    let started = Instant::now();
    let first = app.get("/v1/whoami", &key).await;
    first.assert_ok(200);
    assert_eq!(number(&first, "x-ratelimit-limit"), 120);
    assert_eq!(number(&first, "x-ratelimit-remaining"), 119, "a fresh key");
    assert_eq!(
        number(&first, "x-ratelimit-reset"),
        1,
        "0.5 s of debt, rounded up"
    );
    let mut previous = 119;
    let mut refilled = 0;
    for _ in 0..10 {
        let response = app.get("/v1/whoami", &key).await;
        response.assert_ok(200);
        let remaining = number(&response, "x-ratelimit-remaining");
        // One down per request, never more; a refill (one every 0.5 s) may land in between.
        assert!(remaining + 1 >= previous, "{previous} then {remaining}");
        refilled += remaining + 1 - previous;
        let reset = number(&response, "x-ratelimit-reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
        previous = remaining;
    }
    let refills_possible =
        (started.elapsed().as_millis() / STANDARD_READ_INTERVAL.as_millis()) as u64 + 1;
    assert!(
        refilled <= refills_possible,
        "{refilled} refills in {:?}",
        started.elapsed()
    );
}

async fn the_endpoint_class_is_read_for_get_and_write_for_post_patch_delete(app: TestApp) {
    let child = app.create_child("Acme").await;
    let admin = app.admin_key.clone();
    let path = format!("/v1/organizations/{child}");

    let read = app.get(&path, &admin).await;
    read.assert_ok(200);
    assert_eq!(class(&read), "read");
    assert_eq!(
        number(&read, "x-ratelimit-limit"),
        6_000,
        "bootstrap key: partner"
    );

    let suspend = app.post_empty(&format!("{path}/suspend"), &admin).await;
    suspend.assert_ok(200);
    assert_eq!(class(&suspend), "write");
    assert_eq!(number(&suspend, "x-ratelimit-limit"), 3_000);
    let write_remaining = number(&suspend, "x-ratelimit-remaining");

    let patch = app.patch(&path, &admin, json!({"name": "Acme 2"})).await;
    patch.assert_ok(200);
    assert_eq!(class(&patch), "write");
    assert!(number(&patch, "x-ratelimit-remaining") <= write_remaining);

    let archive = app.delete(&path, &admin).await;
    archive.assert_ok(200);
    assert_eq!(class(&archive), "write");

    // Refused by a handler, the request was still counted, and says so.
    let (_, child_key) = app.mint_key(&app.create_child("Other").await, &["*"]).await;
    let forbidden = app
        .post(
            "/v1/organizations",
            &child_key,
            json!({"name": "Grandchild"}),
        )
        .await;
    forbidden.assert_error(422, "VALIDATION");
    assert_eq!(class(&forbidden), "write");
    assert_eq!(
        number(&forbidden, "x-ratelimit-limit"),
        60,
        "child key: standard"
    );
    assert_eq!(number(&forbidden, "x-ratelimit-remaining"), 59);
    let unknown = app.get("/v1/no-such-route", &child_key).await;
    unknown.assert_error(404, "NOT_FOUND");
    assert_eq!(class(&unknown), "read");
    assert_eq!(number(&unknown, "x-ratelimit-remaining"), 119);
}

async fn keys_and_classes_have_budgets_of_their_own(app: TestApp) {
    let (child, key) = standard_key(&app).await;
    let (_, sibling_key) = app.mint_key(&child, &["*"]).await;
    exhaust_reads(&app, &key)
        .await
        .assert_error(429, "RATE_LIMITED");

    // Same key, write class: untouched (the 422 comes from the handler, after the limiter).
    let write = app
        .post("/v1/organizations", &key, json!({"name": "Grandchild"}))
        .await;
    write.assert_error(422, "VALIDATION");
    assert_eq!(class(&write), "write");
    assert_eq!(number(&write, "x-ratelimit-remaining"), 59);

    // Another key of the same organization: a full read budget.
    let other = app.get("/v1/whoami", &sibling_key).await;
    other.assert_ok(200);
    assert_eq!(number(&other, "x-ratelimit-remaining"), 119);

    // The parent's key is not affected either.
    app.get("/v1/whoami", &app.admin_key).await.assert_ok(200);
}

/// A second server on the same store whose bootstrap key is on the `unlimited` tier.
async fn unlimited_server(app: &TestApp) -> TestApp {
    let mut config = Config {
        http_workers: Some(2),
        bootstrap_rate_limit_tier: "unlimited".to_owned(),
        ..Config::embedded()
    };
    if let Some(url) = app.database_url() {
        config.database_url = Some(url.to_owned());
        config.bootstrap_admin_key = Some(random_key());
        config.bootstrap_org_name = "Operator tooling".to_owned();
        config.database_pool_size = 4;
    }
    TestApp::start(config).await
}

async fn unlimited_never_limits(app: TestApp) {
    let operator = unlimited_server(&app).await;
    for _ in 0..200 {
        let response = operator.get("/v1/whoami", &operator.admin_key).await;
        response.assert_ok(200);
        assert_eq!(class(&response), "read");
        assert_says_no_limit(&response);
    }
    let child = operator.create_child("Tooling target").await;
    for _ in 0..80 {
        let response = operator
            .post_empty(
                &format!("/v1/organizations/{child}/suspend"),
                &operator.admin_key,
            )
            .await;
        response.assert_ok(200);
        assert_eq!(class(&response), "write");
        assert_says_no_limit(&response);
    }
}

/// The headers of a request no limit applies to (docs/rate-limits.md): the largest number,
/// nothing to wait for.
#[track_caller]
fn assert_says_no_limit(response: &Response) {
    for name in RATE_LIMIT_HEADERS {
        assert!(
            header(response, name).is_some(),
            "{name} on {}",
            response.status
        );
    }
    assert_eq!(number(response, "x-ratelimit-limit"), u64::from(u32::MAX));
    assert_eq!(
        number(response, "x-ratelimit-remaining"),
        u64::from(u32::MAX)
    );
    assert_eq!(number(response, "x-ratelimit-reset"), 0);
    assert_eq!(header(response, "retry-after"), None);
}

/// "Every response carries" the headers (API.md §1.7), those with no key to count too.
async fn responses_without_a_key_say_no_limit_applies(app: TestApp) {
    let mut responses = vec![
        app.request(reqwest::Method::GET, "/v1/whoami", None, None)
            .await,
        app.get("/v1/whoami", "lp_live_nope").await,
    ];
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        responses.push(app.request(reqwest::Method::GET, path, None, None).await);
    }
    for response in &responses {
        assert_says_no_limit(response);
        assert_eq!(class(response), "read");
    }
    responses[0].assert_error(401, "UNAUTHENTICATED");
    responses[1].assert_error(401, "UNAUTHENTICATED");
    let unauthenticated_write = app
        .post("/v1/organizations", "lp_live_nope", json!({"name": "x"}))
        .await;
    unauthenticated_write.assert_error(401, "UNAUTHENTICATED");
    assert_says_no_limit(&unauthenticated_write);
    assert_eq!(class(&unauthenticated_write), "write");
}

async fn the_kill_switch_answer_is_not_counted(app: TestApp) {
    let (child, key) = standard_key(&app).await;
    let before = app.get("/v1/whoami", &key).await;
    assert_eq!(number(&before, "x-ratelimit-remaining"), 119);
    app.post_empty(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
    for _ in 0..20 {
        let refused = app.get("/v1/whoami", &key).await;
        refused.assert_error(503, "KILL_SWITCH");
        // The key's budget as it stands: shown, never spent by the refusals.
        assert_eq!(class(&refused), "read");
        assert_eq!(number(&refused, "x-ratelimit-limit"), 120);
        assert!(number(&refused, "x-ratelimit-remaining") >= 119);
        assert!(number(&refused, "x-ratelimit-reset") <= 1);
        assert_eq!(header(&refused, "retry-after"), None);
    }
    let refused_write = app
        .post(
            &format!("/v1/organizations/{child}/api-keys"),
            &key,
            json!({}),
        )
        .await;
    refused_write.assert_error(503, "KILL_SWITCH");
    assert_eq!(class(&refused_write), "write");
    assert_eq!(number(&refused_write, "x-ratelimit-limit"), 60);
    assert_eq!(number(&refused_write, "x-ratelimit-remaining"), 60);
    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    let after = app.get("/v1/whoami", &key).await;
    after.assert_ok(200);
    // Only `before` and `after` were counted (a refill may have landed in between).
    assert!(number(&after, "x-ratelimit-remaining") >= 118);
}

crate::store_tests!(
    a_burst_over_the_standard_read_limit_is_refused_until_retry_after,
    remaining_counts_down_by_one_per_request,
    the_endpoint_class_is_read_for_get_and_write_for_post_patch_delete,
    keys_and_classes_have_budgets_of_their_own,
    unlimited_never_limits,
    responses_without_a_key_say_no_limit_applies,
    the_kill_switch_answer_is_not_counted,
);
