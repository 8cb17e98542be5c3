//! Credits (API.md §6): wallets, allocation with its required Idempotency-Key, the ledger, and the
//! archive sweep.

use reqwest::Method;
use serde_json::{json, Value};

use crate::store_tests;
use crate::support::{assert_z_time, Response, TestApp};

store_tests!(
    a_granted_wallet_reads_as_the_contract_shows,
    allocation_needs_an_idempotency_key_and_replays_with_replayed_true,
    allocation_beyond_the_available_balance_is_402_and_moves_nothing,
    allocation_refusals_follow_the_order_of_checks,
    the_ledger_lists_both_sides_with_filters,
    archive_sweeps_the_childs_credits_back_to_the_parent,
);

async fn allocate(app: &TestApp, child: &str, credits: i64, key: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = key
        .map(|k| vec![("Idempotency-Key", k)])
        .unwrap_or_default();
    app.request_with_headers(
        Method::POST,
        &format!("/v1/organizations/{child}/credits/allocate"),
        Some(&app.admin_key),
        Some(json!({"credits": credits, "description": "monthly top-up", "metadata": {"invoice": "inv_1"}})),
        &headers,
    )
    .await
}

fn fresh() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn balance(app: &TestApp, path: &str) -> Value {
    app.get(path, &app.admin_key).await.assert_ok(200).clone()
}

async fn a_granted_wallet_reads_as_the_contract_shows(app: TestApp) {
    app.grant(&app.admin_org, 6_000).await;
    let wallet = balance(&app, "/v1/credits").await;
    let keys: Vec<&str> = wallet
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "organizationId",
            "balance",
            "available",
            "reservedCredits",
            "usedThisPeriod",
            "currentPeriod"
        ]
    );
    assert_eq!(wallet["organizationId"], app.admin_org);
    assert_eq!(
        (wallet["balance"].clone(), wallet["available"].clone()),
        (json!(6000), json!(6000))
    );
    assert_eq!(
        (
            wallet["reservedCredits"].clone(),
            wallet["usedThisPeriod"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_z_time(&wallet["currentPeriod"]["start"]);
    assert_z_time(&wallet["currentPeriod"]["end"]);
    assert!(wallet["currentPeriod"]["start"]
        .as_str()
        .unwrap()
        .ends_with("-01T00:00:00.000Z"));
    let child = app.create_child("Acme").await;
    let empty = balance(&app, &format!("/v1/organizations/{child}/credits")).await;
    assert_eq!(empty["balance"], 0, "a child starts empty");
    let (_, child_key) = app.mint_key(&child, &["credits:read"]).await;
    let own = app.get("/v1/credits", &child_key).await;
    assert_eq!(own.assert_ok(200)["organizationId"], child);
    let (_, no_scope) = app.mint_key(&child, &["keys:read"]).await;
    app.get("/v1/credits", &no_scope)
        .await
        .assert_error(403, "FORBIDDEN_SCOPE");
}

async fn allocation_needs_an_idempotency_key_and_replays_with_replayed_true(app: TestApp) {
    app.grant(&app.admin_org, 6_000).await;
    let child = app.create_child("Acme").await;
    allocate(&app, &child, 5_000, None)
        .await
        .assert_error(400, "IDEMPOTENCY_REQUIRED");
    let key = fresh();
    let first = allocate(&app, &child, 5_000, Some(&key)).await;
    let body = first.assert_ok(201).clone();
    let fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "id",
            "allocated",
            "created",
            "description",
            "metadata",
            "balance",
            "available",
            "replayed"
        ]
    );
    assert!(body["id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(
        (
            body["allocated"].clone(),
            body["balance"].clone(),
            body["available"].clone()
        ),
        (json!(5000), json!(5000), json!(5000))
    );
    assert_eq!(body["replayed"], false);
    assert_z_time(&body["created"]);
    assert_eq!(body["metadata"], json!({"invoice": "inv_1"}));

    let replay = allocate(&app, &child, 5_000, Some(&key)).await;
    let mut expected = body.clone();
    expected["replayed"] = json!(true);
    assert_eq!(
        replay.assert_ok(201),
        &expected,
        "the same body, replayed: true"
    );
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        balance(&app, "/v1/credits").await["balance"],
        1_000,
        "moved once"
    );
    let summary = balance(&app, &format!("/v1/organizations/{child}")).await;
    assert_eq!(
        (
            summary["summary"]["balance"].clone(),
            summary["summary"]["available"].clone()
        ),
        (json!(5000), json!(5000))
    );
    allocate(&app, &child, 4_000, Some(&key))
        .await
        .assert_error(409, "IDEMPOTENCY_CONFLICT");
}

async fn allocation_beyond_the_available_balance_is_402_and_moves_nothing(app: TestApp) {
    app.grant(&app.admin_org, 100).await;
    let child = app.create_child("Acme").await;
    let refused = allocate(&app, &child, 101, Some(&fresh())).await;
    let details = refused.assert_error(402, "BILLING_EXHAUSTED");
    assert_eq!(details["reason"], "insufficient_credits");
    assert_eq!(balance(&app, "/v1/credits").await["balance"], 100);
    assert_eq!(
        balance(&app, &format!("/v1/organizations/{child}/credits")).await["balance"],
        0
    );
}

async fn allocation_refusals_follow_the_order_of_checks(app: TestApp) {
    app.grant(&app.admin_org, 100).await;
    let child = app.create_child("Acme").await;
    let (_, child_key) = app.mint_key(&child, &["*"]).await;
    let as_child = app
        .request_with_headers(
            Method::POST,
            &format!("/v1/organizations/{child}/credits/allocate"),
            Some(&child_key),
            Some(json!({"credits": 1})),
            &[("Idempotency-Key", &fresh())],
        )
        .await;
    as_child.assert_error(403, "FORBIDDEN_SCOPE");
    for bad in [json!(0), json!(-5), json!(1.5), json!("10")] {
        let refused = app
            .request_with_headers(
                Method::POST,
                &format!("/v1/organizations/{child}/credits/allocate"),
                Some(&app.admin_key),
                Some(json!({"credits": bad})),
                &[("Idempotency-Key", &fresh())],
            )
            .await;
        assert_eq!(
            refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
            "credits",
            "{bad}"
        );
    }
    let (_, other_key) = app.new_partner("Other").await;
    let theirs = app.create_child_of(&other_key, "Theirs").await;
    allocate(&app, &theirs, 10, Some(&fresh()))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);
    let archived = allocate(&app, &child, 10, Some(&fresh())).await;
    assert_eq!(archived.assert_error(409, "CONFLICT")["status"], "archived");
}

async fn the_ledger_lists_both_sides_with_filters(app: TestApp) {
    app.grant(&app.admin_org, 1_000).await;
    let child = app.create_child("Acme").await;
    let allocation = allocate(&app, &child, 300, Some(&fresh()))
        .await
        .assert_ok(201)
        .clone();
    let parent_ledger = balance(&app, "/v1/credits/events").await;
    let items = parent_ledger["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let event = &items[0];
    let fields: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "eventId",
            "eventType",
            "credits",
            "balanceAfter",
            "reservationId",
            "transferId",
            "description",
            "metadata",
            "createdAt"
        ]
    );
    assert_eq!(
        (
            event["eventType"].clone(),
            event["credits"].clone(),
            event["balanceAfter"].clone()
        ),
        (json!("allocation"), json!(-300), json!(700))
    );
    assert_eq!(event["transferId"], allocation["id"]);
    assert!(event["eventId"].as_str().unwrap().starts_with("evt_"));
    assert_z_time(&event["createdAt"]);
    assert_eq!(items[1]["eventType"], "grant");
    let child_ledger = balance(&app, &format!("/v1/organizations/{child}/credits/events")).await;
    assert_eq!(child_ledger["items"][0]["credits"], 300);
    assert_eq!(child_ledger["items"][0]["transferId"], allocation["id"]);

    let grants = balance(&app, "/v1/credits/events?eventType=grant").await;
    assert_eq!(grants["items"].as_array().unwrap().len(), 1);
    let created = event["createdAt"].as_str().unwrap();
    let exact = balance(
        &app,
        &format!("/v1/credits/events?since={created}&until={created}&eventType=allocation"),
    )
    .await;
    assert_eq!(
        exact["items"].as_array().unwrap().len(),
        1,
        "since and until are inclusive"
    );
    let paged = balance(&app, "/v1/credits/events?limit=1").await;
    let cursor = paged["nextCursor"].as_str().unwrap();
    let rest = balance(&app, &format!("/v1/credits/events?limit=1&cursor={cursor}")).await;
    assert_eq!(rest["items"][0]["eventType"], "grant");
    assert_eq!(rest["nextCursor"], Value::Null);
    for bad in [
        "eventType=gift",
        "since=2026-06-01T00:00:00%2B00:00",
        "until=yesterday",
        "limit=0",
        "limit=101",
    ] {
        app.get(&format!("/v1/credits/events?{bad}"), &app.admin_key)
            .await
            .assert_error(422, "VALIDATION");
    }
    // The parent reads the child's ledger from inside it too.
    let inside = app
        .request_with_headers(
            Method::GET,
            "/v1/credits/events",
            Some(&app.admin_key),
            None,
            &[("X-Layers-Organization", &child)],
        )
        .await;
    assert_eq!(inside.assert_ok(200)["items"][0]["credits"], 300);
}

async fn archive_sweeps_the_childs_credits_back_to_the_parent(app: TestApp) {
    app.grant(&app.admin_org, 1_000).await;
    let child = app.create_child("Leaving").await;
    allocate(&app, &child, 400, Some(&fresh()))
        .await
        .assert_ok(201);
    let archived = app
        .delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await;
    assert_eq!(archived.assert_ok(200)["reclaimedCredits"], 400);
    assert_eq!(balance(&app, "/v1/credits").await["balance"], 1_000);
    let parent_events = balance(&app, "/v1/credits/events?eventType=reclaim").await;
    assert_eq!(parent_events["items"][0]["credits"], 400);
    let child_events = balance(
        &app,
        &format!("/v1/organizations/{child}/credits/events?eventType=reclaim"),
    )
    .await;
    assert_eq!(child_events["items"][0]["credits"], -400);
    assert_eq!(child_events["items"][0]["balanceAfter"], 0);
    let again = app
        .delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await;
    assert_eq!(again.assert_ok(200)["reclaimedCredits"], 0);
}

/// `BOOTSTRAP_CREDITS` is granted once, to the bootstrap organization, when start-up creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_credits_are_granted_once() {
    let first = TestApp::spawn(crate::support::Store::Postgres).await;
    let config = |credits| {
        let mut config = server::Config::embedded();
        config.database_url = first.database_url().map(str::to_owned);
        config.bootstrap_admin_key = Some(first.admin_key.clone());
        config.bootstrap_credits = credits;
        config
    };
    // The key is installed already: a restart with BOOTSTRAP_CREDITS grants nothing.
    let again = TestApp::start(config(700)).await;
    assert_eq!(balance(&again, "/v1/credits").await["balance"], 0);

    let mut fresh = server::Config::embedded();
    fresh.bootstrap_credits = 700;
    let app = TestApp::start(fresh).await;
    let wallet = balance(&app, "/v1/credits").await;
    assert_eq!(wallet["balance"], 700);
    let grants = balance(&app, "/v1/credits/events?eventType=grant").await;
    assert_eq!(grants["items"].as_array().unwrap().len(), 1);
}
