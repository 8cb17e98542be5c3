//! Reservations (API.md §6.4): the metering interface, and the kill switch over spending (§3).

use reqwest::Method;
use serde_json::{json, Value};

use crate::store_tests;
use crate::support::{assert_z_time, Response, TestApp};

store_tests!(
    a_reservation_is_held_settled_and_released_once,
    nothing_is_reserved_while_suspended_or_archived,
    a_reservation_beyond_the_available_balance_is_402,
    unsettled_reservations_expire,
    spend_controls_cap_and_refill,
    a_reservation_is_read_with_credits_read_or_credits_write,
    a_settled_reservations_usage_event_names_it,
    a_malformed_credit_config_is_422_before_a_missing_child_is_404,
    a_malformed_settle_is_422_before_a_missing_reservation_is_404,
);

/// A child funded with `credits`, and a key of it that meters work.
async fn metered_child(app: &TestApp, credits: i64) -> (String, String) {
    app.grant(&app.admin_org, credits).await;
    let child = app.create_child("Acme").await;
    app.allocate(&child, credits).await;
    let (_, key) = app
        .mint_key(&child, &["credits:read", "credits:write"])
        .await;
    (child, key)
}

async fn reserve(app: &TestApp, key: &str, credits: i64) -> Response {
    app.post(
        "/v1/credits/reservations",
        key,
        json!({"credits": credits, "description": "one video"}),
    )
    .await
}

async fn wallet(app: &TestApp, key: &str) -> Value {
    app.get("/v1/credits", key).await.assert_ok(200).clone()
}

async fn a_reservation_is_held_settled_and_released_once(app: TestApp) {
    let (child, key) = metered_child(&app, 1_000).await;
    let held = reserve(&app, &key, 120).await;
    assert_eq!(
        held.headers.get("x-ratelimit-endpoint-class").unwrap(),
        "work"
    );
    let body = held.assert_ok(201).clone();
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
            "organizationId",
            "credits",
            "status",
            "settledCredits",
            "expiresAt",
            "createdAt"
        ]
    );
    assert!(body["id"].as_str().unwrap().starts_with("rsv_"));
    assert_eq!(
        (
            body["organizationId"].clone(),
            body["credits"].clone(),
            body["status"].clone()
        ),
        (json!(child), json!(120), json!("held"))
    );
    assert_z_time(&body["expiresAt"]);
    let w = wallet(&app, &key).await;
    assert_eq!(
        (
            w["balance"].clone(),
            w["available"].clone(),
            w["reservedCredits"].clone()
        ),
        (json!(1000), json!(880), json!(120))
    );
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/v1/credits/reservations/{id}"), &key)
            .await
            .assert_ok(200),
        &body
    );

    let settle = format!("/v1/credits/reservations/{id}/settle");
    let settled = app.post(&settle, &key, json!({"credits": 100})).await;
    assert_eq!(
        (
            settled.assert_ok(200)["status"].clone(),
            settled.body["settledCredits"].clone()
        ),
        (json!("settled"), json!(100))
    );
    assert_eq!(
        app.post(&settle, &key, json!({"credits": 100}))
            .await
            .assert_ok(200),
        &settled.body,
        "the terminal shape"
    );
    app.post(&settle, &key, json!({"credits": 50}))
        .await
        .assert_error(409, "CONFLICT");
    let w = wallet(&app, &key).await;
    assert_eq!(
        (
            w["balance"].clone(),
            w["available"].clone(),
            w["usedThisPeriod"].clone()
        ),
        (json!(900), json!(900), json!(100))
    );
    let usage = app.get("/v1/credits/events?eventType=usage", &key).await;
    assert_eq!(usage.assert_ok(200)["items"][0]["credits"], -100);

    let other = reserve(&app, &key, 50).await.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let released = app
        .post_empty(&format!("/v1/credits/reservations/{other}/release"), &key)
        .await;
    assert_eq!(released.assert_ok(200)["status"], "released");
    assert_eq!(wallet(&app, &key).await["available"], 900);
    app.post(
        &format!("/v1/credits/reservations/{other}/settle"),
        &key,
        json!({"credits": 51}),
    )
    .await
    .assert_error(422, "VALIDATION");
    app.get(
        "/v1/credits/reservations/rsv_00000000-0000-4000-8000-000000000000",
        &key,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.get("/v1/credits/reservations/nope", &key)
        .await
        .assert_error(422, "VALIDATION");
}

async fn nothing_is_reserved_while_suspended_or_archived(app: TestApp) {
    let (child, key) = metered_child(&app, 1_000).await;
    app.post_empty(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
    // The child's own key: the kill switch, at the gate.
    reserve(&app, &key, 10)
        .await
        .assert_error(503, "KILL_SWITCH");
    // Its parent acting inside it: spending is refused (§2.3).
    let inside = app
        .request_with_headers(
            Method::POST,
            "/v1/credits/reservations",
            Some(&app.admin_key),
            Some(json!({"credits": 10})),
            &[("X-Layers-Organization", &child)],
        )
        .await;
    assert_eq!(inside.assert_error(409, "CONFLICT")["status"], "suspended");
    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    reserve(&app, &key, 10).await.assert_ok(201);
    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);
    let archived = app
        .request_with_headers(
            Method::POST,
            "/v1/credits/reservations",
            Some(&app.admin_key),
            Some(json!({"credits": 10})),
            &[("X-Layers-Organization", &child)],
        )
        .await;
    assert_eq!(archived.assert_error(409, "CONFLICT")["status"], "archived");
}

async fn a_reservation_beyond_the_available_balance_is_402(app: TestApp) {
    let (_, key) = metered_child(&app, 100).await;
    reserve(&app, &key, 60).await.assert_ok(201);
    let refused = reserve(&app, &key, 41).await;
    assert_eq!(
        refused.assert_error(402, "BILLING_EXHAUSTED")["reason"],
        "insufficient_credits"
    );
    reserve(&app, &key, 0).await.assert_error(422, "VALIDATION");
}

async fn unsettled_reservations_expire(app: TestApp) {
    let (_, key) = metered_child(&app, 100).await;
    let id = reserve(&app, &key, 70).await.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock
        .advance(time::Duration::hours(1) + time::Duration::seconds(1));
    // The server's worker claims due jobs every 2 s; here at once, through the same use case.
    assert_eq!(app.control_plane().run_scheduled_work().await.unwrap(), 1);
    let expired = app
        .get(&format!("/v1/credits/reservations/{id}"), &key)
        .await;
    assert_eq!(expired.assert_ok(200)["status"], "expired");
    assert_eq!(wallet(&app, &key).await["available"], 100);
}

async fn spend_controls_cap_and_refill(app: TestApp) {
    let (child, key) = metered_child(&app, 200).await;
    app.grant(&app.admin_org, 1_000).await;
    let path = format!("/v1/organizations/{child}/credit-config");
    let initial = app.get(&path, &app.admin_key).await;
    assert_eq!(
        initial.assert_ok(200),
        &json!({"organizationId": child, "config": {"monthlyCreditCap": null, "refillThreshold": null, "refillAmount": null, "autoRefillEnabled": false}, "balance": 200, "available": 200})
    );
    let refused = app
        .patch(&path, &app.admin_key, json!({"refillThreshold": 100}))
        .await;
    assert_eq!(
        refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "refillThreshold"
    );
    app.patch(&path, &app.admin_key, json!({"monthlyCreditCap": -1}))
        .await
        .assert_error(422, "VALIDATION");

    let capped = app
        .patch(&path, &app.admin_key, json!({"monthlyCreditCap": 120}))
        .await;
    assert_eq!(capped.assert_ok(200)["config"]["monthlyCreditCap"], 120);
    reserve(&app, &key, 100).await.assert_ok(201);
    let over = reserve(&app, &key, 21).await;
    assert_eq!(
        over.assert_error(402, "BILLING_EXHAUSTED")["reason"],
        "monthly_cap"
    );
    let summary = app
        .get(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await;
    assert_eq!(
        summary.assert_ok(200)["summary"]["creditConfig"]["monthlyCreditCap"],
        120
    );

    // Auto-refill: available 100 now; below 150, 500 come from the parent.
    let refill = app
        .patch(
            &path,
            &app.admin_key,
            json!({"monthlyCreditCap": null, "refillThreshold": 150, "refillAmount": 500}),
        )
        .await;
    let config = refill.assert_ok(200)["config"].clone();
    assert_eq!(
        config,
        json!({"monthlyCreditCap": null, "refillThreshold": 150, "refillAmount": 500, "autoRefillEnabled": true})
    );
    assert_eq!(
        refill.body["available"], 600,
        "refilled as soon as the threshold was set under"
    );
    let events = app
        .get(
            &format!("/v1/organizations/{child}/credits/events?eventType=allocation"),
            &app.admin_key,
        )
        .await;
    assert_eq!(events.assert_ok(200)["items"][0]["credits"], 500);
    reserve(&app, &key, 460).await.assert_ok(201);
    assert_eq!(
        wallet(&app, &key).await["available"],
        640,
        "140 left, below 150: refilled again"
    );
    let parent = app.get("/v1/credits", &app.admin_key).await;
    assert_eq!(
        parent.assert_ok(200)["balance"],
        0,
        "the parent's 1,000 went in two refills"
    );
    reserve(&app, &key, 600).await.assert_ok(201);
    assert_eq!(
        wallet(&app, &key).await["available"],
        40,
        "the parent has nothing left: no refill"
    );
}

/// API.md §6.4 is `credits:write`'s section: the service that reserves and settles may read what
/// it holds. `credits:read` may too; a key with neither is 403 naming `credits:read`.
async fn a_reservation_is_read_with_credits_read_or_credits_write(app: TestApp) {
    let (child, key) = metered_child(&app, 100).await;
    let held = reserve(&app, &key, 10).await.assert_ok(201).clone();
    let path = format!("/v1/credits/reservations/{}", held["id"].as_str().unwrap());
    for scopes in [&["credits:read"][..], &["credits:write"], &["*"]] {
        let (_, reader) = app.mint_key(&child, scopes).await;
        assert_eq!(
            app.get(&path, &reader).await.assert_ok(200),
            &held,
            "{scopes:?}"
        );
    }
    let (_, neither) = app.mint_key(&child, &["keys:read", "webhooks:write"]).await;
    let refused = app.get(&path, &neither).await;
    assert_eq!(
        refused.assert_error(403, "FORBIDDEN_SCOPE")["requiredScope"],
        "credits:read"
    );
    // The scope comes before the path id (API.md §1.2).
    app.get("/v1/credits/reservations/nope", &neither)
        .await
        .assert_error(403, "FORBIDDEN_SCOPE");
}

/// API.md §6.3: a ledger item's `reservationId` names the reservation a `usage` event settled,
/// in the organization's own ledger and in its parent's view of it; other events show null.
async fn a_settled_reservations_usage_event_names_it(app: TestApp) {
    let (child, key) = metered_child(&app, 100).await;
    let id = reserve(&app, &key, 30).await.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/v1/credits/reservations/{id}/settle"),
        &key,
        json!({"credits": 20}),
    )
    .await
    .assert_ok(200);
    for (path, caller) in [
        ("/v1/credits/events".to_owned(), &key),
        (
            format!("/v1/organizations/{child}/credits/events"),
            &app.admin_key,
        ),
    ] {
        let listed = app.get(&path, caller).await;
        let items = listed.assert_ok(200)["items"].as_array().unwrap().clone();
        let shown: Vec<(&str, &Value)> = items
            .iter()
            .map(|item| (item["eventType"].as_str().unwrap(), &item["reservationId"]))
            .collect();
        assert_eq!(
            shown,
            [("usage", &json!(id)), ("allocation", &Value::Null)],
            "{path}"
        );
        assert_eq!(items[0]["credits"], -20);
    }
}

/// A well-formed id that names nothing.
const NOWHERE: &str = "00000000-0000-4000-8000-000000000000";

/// API.md §1.2: request validation (422) before existence (404). A value no config could take is
/// refused whatever the id names; whether the refill pair goes together after the merge depends
/// on the stored config, so it is told only once the child is found.
async fn a_malformed_credit_config_is_422_before_a_missing_child_is_404(app: TestApp) {
    let config = format!("/v1/organizations/org_{NOWHERE}/credit-config");
    for (body, field) in [
        (json!({"monthlyCreditCap": -1}), "monthlyCreditCap"),
        (
            json!({"refillThreshold": -5, "refillAmount": 10}),
            "refillThreshold",
        ),
        (
            json!({"refillThreshold": 5, "refillAmount": 0}),
            "refillAmount",
        ),
        (
            json!({"refillThreshold": 5, "refillAmount": null}),
            "refillThreshold",
        ),
        (
            json!({"autoRefillEnabled": true, "refillAmount": null}),
            "autoRefillEnabled",
        ),
    ] {
        let refused = app.patch(&config, &app.admin_key, body.clone()).await;
        assert_eq!(
            refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
            field,
            "{body}"
        );
    }
    app.patch(&config, &app.admin_key, json!({"refillThreshold": 100}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.patch(&config, &app.admin_key, json!({"monthlyCreditCap": 10}))
        .await
        .assert_error(404, "NOT_FOUND");
}

/// The same for a settle: a negative amount is 422 whatever the id names; "more than reserved"
/// needs the reservation.
async fn a_malformed_settle_is_422_before_a_missing_reservation_is_404(app: TestApp) {
    let (_, key) = metered_child(&app, 100).await;
    let settle = format!("/v1/credits/reservations/rsv_{NOWHERE}/settle");
    let refused = app.post(&settle, &key, json!({"credits": -1})).await;
    assert_eq!(
        refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "credits"
    );
    app.post(&settle, &key, json!({"credits": 5}))
        .await
        .assert_error(404, "NOT_FOUND");
}
