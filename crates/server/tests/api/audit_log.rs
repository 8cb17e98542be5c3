//! `GET /v1/audit-log` (API.md §9): one event per material action, with the request that caused
//! it; the parent reads a child's log (archived children included) with `X-Layers-Organization`;
//! requests refused by the kill switch are audited at most once per key per minute.

use reqwest::Method;
use serde_json::{json, Value};

use crate::store_tests;
use crate::support::{assert_z_time, Response, TestApp};

store_tests!(
    each_transition_leaves_exactly_one_event_and_a_no_op_none,
    filters_and_pages,
    the_child_reads_its_own_log_and_the_parent_a_childs,
    kill_switch_refusals_are_audited_once_a_minute_per_key,
    webhook_endpoint_changes_are_audited,
);

const ACTING: &str = "X-Layers-Organization";

/// The audit log of the caller's organization, or of `acting` (a child) with the header.
async fn audit(app: &TestApp, key: &str, query: &str, acting: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = acting.map(|org| (ACTING, org)).into_iter().collect();
    app.request_with_headers(
        Method::GET,
        &format!("/v1/audit-log{query}"),
        Some(key),
        None,
        &headers,
    )
    .await
}

/// Every item of the child's log, as the parent reads it.
async fn items(app: &TestApp, child: &str, query: &str) -> Vec<Value> {
    let response = audit(app, &app.admin_key, query, Some(child)).await;
    response.assert_ok(200)["items"].as_array().unwrap().clone()
}

fn of_type<'a>(items: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|e| e["eventType"] == event_type)
        .collect()
}

/// Moves the server's clock on, so that each action has an instant of its own (the order and
/// the time filters are then exact, whatever the speed of the machine).
fn tick(app: &TestApp) {
    app.clock.advance(time::Duration::seconds(1));
}

fn request_id(response: &Response) -> String {
    response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn admin_key_id(app: &TestApp) -> String {
    let whoami = app.get("/v1/whoami", &app.admin_key).await;
    whoami.body["apiKeyId"].as_str().unwrap().to_owned()
}

async fn each_transition_leaves_exactly_one_event_and_a_no_op_none(app: TestApp) {
    let created = app
        .post(
            "/v1/organizations",
            &app.admin_key,
            json!({"name": "audited child"}),
        )
        .await;
    let child = created.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let create_request = request_id(&created);
    tick(&app);
    let suspend = app
        .post(
            &format!("/v1/organizations/{child}/suspend"),
            &app.admin_key,
            json!({"reason": "unpaid invoice"}),
        )
        .await;
    suspend.assert_ok(200);
    tick(&app);
    // A no-op: already suspended.
    let again = app
        .post_empty(
            &format!("/v1/organizations/{child}/suspend"),
            &app.admin_key,
        )
        .await;
    again.assert_ok(200);
    let resume = app
        .post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await;
    resume.assert_ok(200);
    tick(&app);
    // A no-op: already active.
    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    let archive = app
        .delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await;
    archive.assert_ok(200);
    // A no-op: already archived.
    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);

    // The archived child's log is still the parent's to read.
    let items = items(&app, &child, "?limit=200").await;
    let key_id = admin_key_id(&app).await;
    let expected = [
        (
            "organization.created",
            &create_request,
            json!({"fromStatus": null, "toStatus": "active", "reason": null}),
        ),
        (
            "organization.suspended",
            &request_id(&suspend),
            json!({"fromStatus": "active", "toStatus": "suspended", "reason": "unpaid invoice"}),
        ),
        (
            "organization.resumed",
            &request_id(&resume),
            json!({"fromStatus": "suspended", "toStatus": "active", "reason": null}),
        ),
        (
            "organization.archived",
            &request_id(&archive),
            json!({"fromStatus": "active", "toStatus": "archived", "reason": null}),
        ),
    ];
    for (event_type, request, data) in &expected {
        let events = of_type(&items, event_type);
        assert_eq!(events.len(), 1, "one {event_type}: {items:?}");
        let event = events[0];
        assert_eq!(event["data"], *data, "{event_type}");
        assert_eq!(event["requestId"], **request, "{event_type}");
        assert_eq!(event["organizationId"], child);
        assert_eq!(
            event["actor"],
            json!({"type": "api_key", "apiKeyId": key_id, "organizationId": app.admin_org})
        );
        assert!(event["eventId"].as_str().unwrap().starts_with("aud_"));
        assert_z_time(&event["occurredAt"]);
        let fields: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert_eq!(
            fields,
            [
                "eventId",
                "eventType",
                "occurredAt",
                "requestId",
                "organizationId",
                "actor",
                "data"
            ]
        );
    }
    let transitions: Vec<&str> = items
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .filter(|t| t.starts_with("organization."))
        .collect();
    // Newest first.
    assert_eq!(
        transitions,
        [
            "organization.archived",
            "organization.resumed",
            "organization.suspended",
            "organization.created"
        ]
    );
}

async fn filters_and_pages(app: TestApp) {
    let child = app.create_child("paged audit").await;
    for _ in 0..3 {
        tick(&app);
        app.post_empty(
            &format!("/v1/organizations/{child}/suspend"),
            &app.admin_key,
        )
        .await
        .assert_ok(200);
        tick(&app);
        app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
            .await
            .assert_ok(200);
    }
    let all = items(&app, &child, "?limit=200").await;
    assert_eq!(all.len(), 7, "created, 3 suspended, 3 resumed: {all:?}");

    // eventType
    let suspended = items(&app, &child, "?eventType=organization.suspended").await;
    assert_eq!(suspended.len(), 3);
    assert!(suspended
        .iter()
        .all(|e| e["eventType"] == "organization.suspended"));
    assert!(items(&app, &child, "?eventType=api_key.killed")
        .await
        .is_empty());

    // since / until: inclusive, to the millisecond shown.
    let oldest = all.last().unwrap();
    let newest = all.first().unwrap();
    let since = format!("?since={}", oldest["occurredAt"].as_str().unwrap());
    assert_eq!(items(&app, &child, &since).await.len(), 7);
    let until = format!("?until={}", oldest["occurredAt"].as_str().unwrap());
    let up_to_oldest = items(&app, &child, &until).await;
    assert!(up_to_oldest
        .iter()
        .any(|e| e["eventId"] == oldest["eventId"]));
    assert!(up_to_oldest
        .iter()
        .all(|e| e["eventId"] != newest["eventId"]));
    let at_newest = format!(
        "?since={}&eventType=organization.resumed",
        newest["occurredAt"].as_str().unwrap()
    );
    let newest_only = items(&app, &child, &at_newest).await;
    assert!(newest_only
        .iter()
        .any(|e| e["eventId"] == newest["eventId"]));
    assert!(items(&app, &child, "?since=2999-01-01T00:00:00.000Z")
        .await
        .is_empty());

    // limit and cursor: every event once, in the same order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            None => "?limit=2".to_owned(),
            Some(c) => format!("?limit=2&cursor={c}"),
        };
        let page = audit(&app, &app.admin_key, &query, Some(&child)).await;
        let body = page.assert_ok(200);
        let page_items = body["items"].as_array().unwrap();
        assert!(page_items.len() <= 2);
        paged.extend(page_items.iter().map(|e| e["eventId"].clone()));
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|e| e["eventId"].clone()).collect();
    assert_eq!(paged, ids);

    // Refusals name the parameter.
    for (query, field) in [
        ("?eventType=organization.exploded", "eventType"),
        ("?eventType=allocation", "eventType"),
        ("?since=2026-06-01T00:00:00.000%2B00:00", "since"),
        ("?until=tomorrow", "until"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?status=active", "status"),
    ] {
        let response = audit(&app, &app.admin_key, query, Some(&child)).await;
        let details = response.assert_error(422, "VALIDATION");
        assert_eq!(details["fields"][0]["field"], field, "{query}");
    }
    assert_eq!(
        audit(&app, &app.admin_key, "?limit=200", Some(&child))
            .await
            .assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    // A cursor of another listing is refused.
    let ledger = app
        .get(
            &format!("/v1/organizations/{child}/credits/events?limit=1"),
            &app.admin_key,
        )
        .await;
    if let Some(foreign) = ledger.body["nextCursor"].as_str() {
        let response = audit(
            &app,
            &app.admin_key,
            &format!("?cursor={foreign}"),
            Some(&child),
        )
        .await;
        response.assert_error(422, "VALIDATION");
    }
}

async fn the_child_reads_its_own_log_and_the_parent_a_childs(app: TestApp) {
    let child = app.create_child("reads its own").await;
    let (_, reader) = app.mint_key(&child, &["audit:read"]).await;
    let (_, no_audit) = app.mint_key(&child, &["credits:read"]).await;
    app.patch(
        &format!("/v1/organizations/{child}"),
        &app.admin_key,
        json!({"name": "renamed"}),
    )
    .await
    .assert_ok(200);

    let own = audit(&app, &reader, "", None).await;
    let own = own.assert_ok(200)["items"].as_array().unwrap().clone();
    assert!(!own.is_empty());
    assert!(own.iter().all(|e| e["organizationId"] == child));
    let updated = of_type(&own, "organization.updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"], json!({"fields": ["name"]}));
    assert_eq!(of_type(&own, "api_key.created").len(), 2);

    // The parent's view of the child's log is the same log.
    let parents = items(&app, &child, "").await;
    assert_eq!(parents, own);

    // Without audit:read: 403 naming it.
    let refused = audit(&app, &no_audit, "", None).await;
    let details = refused.assert_error(403, "FORBIDDEN_SCOPE");
    assert_eq!(details["requiredScope"], "audit:read");

    // The parent's own log does not show the child's events.
    let partner = audit(&app, &app.admin_key, "?limit=200", None).await;
    let partner = partner.assert_ok(200)["items"].as_array().unwrap().clone();
    assert!(partner.iter().all(|e| e["organizationId"] == app.admin_org));

    // Another partner cannot read this child's log: 404, never 403.
    let (_, other) = app.new_partner("other partner").await;
    audit(&app, &other, "", Some(&child))
        .await
        .assert_error(404, "NOT_FOUND");
    // A child key may not use the header.
    audit(&app, &reader, "", Some(&child))
        .await
        .assert_error(403, "FORBIDDEN_SCOPE");
}

async fn kill_switch_refusals_are_audited_once_a_minute_per_key(app: TestApp) {
    let child = app.create_child("refused").await;
    let (key_id, key) = app.mint_key(&child, &["audit:read", "credits:read"]).await;
    let (other_id, other) = app.mint_key(&child, &["credits:read"]).await;
    app.post_empty(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);

    let first = app.get("/v1/credits", &key).await;
    first.assert_error(503, "KILL_SWITCH");
    for path in [
        "/v1/whoami",
        "/v1/audit-log",
        "/v1/no-such-route",
        "/v1/credits",
    ] {
        app.get(path, &key).await.assert_error(503, "KILL_SWITCH");
    }
    app.get("/v1/whoami", &other)
        .await
        .assert_error(503, "KILL_SWITCH");

    let refusals = items(&app, &child, "?eventType=kill_switch.refused").await;
    assert_eq!(refusals.len(), 2, "one per key: {refusals:?}");
    let mine = refusals
        .iter()
        .find(|e| e["data"]["apiKeyId"] == key_id)
        .expect("the first key's refusal");
    assert_eq!(mine["requestId"], request_id(&first));
    assert_eq!(
        mine["data"],
        json!({"apiKeyId": key_id, "scope": "organization", "method": "GET", "route": "/v1/credits"})
    );
    assert_eq!(
        mine["actor"],
        json!({"type": "api_key", "apiKeyId": key_id, "organizationId": child})
    );
    assert_eq!(mine["organizationId"], child);
    assert!(refusals.iter().any(|e| e["data"]["apiKeyId"] == other_id));

    // A minute later, the next refusal of the key is audited again.
    app.clock.advance(time::Duration::seconds(61));
    let later = app.get("/v1/whoami", &key).await;
    later.assert_error(503, "KILL_SWITCH");
    app.get("/v1/whoami", &key)
        .await
        .assert_error(503, "KILL_SWITCH");
    let refusals = items(&app, &child, "?eventType=kill_switch.refused").await;
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert_eq!(refusals[0]["requestId"], request_id(&later));
    assert_eq!(refusals[0]["data"]["route"], "/v1/whoami");

    // Resumed, the key reads its own log, refusals included.
    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    let own = audit(&app, &key, "?eventType=kill_switch.refused", None).await;
    assert_eq!(own.assert_ok(200)["items"].as_array().unwrap().len(), 3);
}

async fn webhook_endpoint_changes_are_audited(app: TestApp) {
    let created = app
        .post(
            "/v1/webhook-endpoints",
            &app.admin_key,
            json!({"url": "https://93.184.216.34/audited", "events": ["organization.suspended"]}),
        )
        .await;
    let endpoint = created.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let patched = app
        .patch(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &app.admin_key,
            json!({"status": "disabled"}),
        )
        .await;
    patched.assert_ok(200);
    let deleted = app
        .delete(&format!("/v1/webhook-endpoints/{endpoint}"), &app.admin_key)
        .await;
    deleted.assert_ok(200);
    let log = audit(&app, &app.admin_key, "?limit=200", None).await;
    let log = log.assert_ok(200)["items"].as_array().unwrap().clone();
    for (event_type, response, status) in [
        ("webhook_endpoint.created", &created, "enabled"),
        ("webhook_endpoint.updated", &patched, "disabled"),
        ("webhook_endpoint.deleted", &deleted, "disabled"),
    ] {
        let events = of_type(&log, event_type);
        assert_eq!(events.len(), 1, "{event_type}: {log:?}");
        assert_eq!(events[0]["requestId"], request_id(response));
        assert_eq!(
            events[0]["data"],
            json!({"endpointId": endpoint, "url": "https://93.184.216.34/audited", "status": status})
        );
        assert_eq!(events[0]["organizationId"], app.admin_org);
    }
}
