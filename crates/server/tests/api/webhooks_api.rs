//! Webhook endpoints and deliveries over HTTP (API.md §7): CRUD and its validation, the signing
//! secret shown once, who may subscribe to what, the https rule outside local development, and
//! test pings and replays that reach a receiver on this machine (local-development mode).
//!
//! The suite's servers run in local-development mode (`WEBHOOKS_ALLOW_PRIVATE_URLS=true`, see
//! `support::test_config`), so deliveries reach a receiver on 127.0.0.1; the https rule is
//! checked on a server of its own with the default `false` (`mode_tests!`). Endpoints that are
//! not meant to receive anything point at a literal public address (accepted in either mode,
//! never resolved) and subscribe to nothing that happens in their tests, so nothing is sent.

use std::time::Duration;

use adapters_pg::testing::TestDatabase;
use reqwest::Method;
use serde_json::{json, Value};
use server::Config;

use crate::receiver::{Received, Receiver};
use crate::store_tests;
use crate::support::{
    assert_org_time, assert_z_time, random_key, test_config, Response, Store, TestApp,
};

store_tests!(
    endpoints_crud_and_validation,
    signing_secret_only_on_create_and_idempotent_create_replays_it,
    all_children_needs_org_admin,
    another_organizations_endpoint_is_not_found,
    lists_are_paged,
    new_routes_are_documented,
    every_event_type_is_star_written_either_way,
    private_addresses_are_accepted_in_local_development,
    test_ping_and_replay_reach_the_receiver,
    an_event_shows_the_organization_as_the_api_does,
);

/// Like `store_tests!`, on a server with `WEBHOOKS_ALLOW_PRIVATE_URLS` = `$private`.
macro_rules! mode_tests {
    ($module:ident, $private:expr; $($name:ident),* $(,)?) => {
        mod $module {
            mod memory {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let app = super::super::ModeApp::spawn(crate::support::Store::Memory, $private).await;
                        super::super::$name(app).await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let app = super::super::ModeApp::spawn(crate::support::Store::Postgres, $private).await;
                        super::super::$name(app).await
                    }
                )*
            }
        }
    };
}

mode_tests!(outside_local_development, false; https_and_public_addresses_only);

/// A server with `WEBHOOKS_ALLOW_PRIVATE_URLS` as the test says, on a store of its own (a fresh
/// database on PostgreSQL, dropped with it).
pub struct ModeApp {
    app: TestApp,
    _database: Option<TestDatabase>,
}

impl std::ops::Deref for ModeApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl ModeApp {
    pub async fn spawn(store: Store, allow_private_urls: bool) -> ModeApp {
        let mut config = Config {
            webhooks_allow_private_urls: allow_private_urls,
            ..test_config()
        };
        let database = match store {
            Store::Memory => None,
            Store::Postgres => {
                let database = TestDatabase::create().await.expect("a test database");
                config.database_url = Some(database.url().to_owned());
                config.bootstrap_admin_key = Some(random_key());
                config.database_pool_size = 4;
                Some(database)
            }
        };
        ModeApp {
            app: TestApp::start(config).await,
            _database: database,
        }
    }
}

/// A literal public address: accepted in both modes without a DNS lookup.
const PUBLIC_URL: &str = "https://93.184.216.34/hooks";
/// Subscribed by the endpoints of the tests that send nothing: no test here suspends the
/// organization that owns them.
const QUIET_EVENTS: [&str; 1] = ["organization.suspended"];

const ENDPOINT_FIELDS: [&str; 8] = [
    "id",
    "url",
    "events",
    "scope",
    "status",
    "description",
    "createdAt",
    "updatedAt",
];

const DELIVERY_FIELDS: [&str; 11] = [
    "id",
    "endpointId",
    "eventId",
    "eventType",
    "status",
    "attempts",
    "lastError",
    "lastResponseStatus",
    "lastAttemptAt",
    "nextAttemptAt",
    "createdAt",
];

fn fields(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn id_of(response: &Response) -> String {
    response.body["id"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, key: &str, body: Value) -> Response {
    app.post("/v1/webhook-endpoints", key, body).await
}

/// An endpoint of the caller's organization that is never sent anything.
async fn quiet_endpoint(app: &TestApp, key: &str) -> String {
    let created = create(app, key, json!({"url": PUBLIC_URL, "events": QUIET_EVENTS})).await;
    created.assert_ok(201);
    id_of(&created)
}

#[track_caller]
fn assert_invalid(response: &Response, field: &str) {
    let details = response.assert_error(422, "VALIDATION");
    assert_eq!(details["fields"][0]["field"], field, "{}", response.body);
}

async fn endpoints_crud_and_validation(app: TestApp) {
    let key = &app.admin_key;
    let created = create(
        &app,
        key,
        json!({"url": PUBLIC_URL, "events": ["organization.suspended", "organization.resumed"],
               "description": "ops pager"}),
    )
    .await;
    let body = created.assert_ok(201).clone();
    let id = id_of(&created);
    assert!(id.starts_with("whe_"), "{id}");
    assert_eq!(body["url"], PUBLIC_URL);
    assert_eq!(
        body["events"],
        json!(["organization.suspended", "organization.resumed"])
    );
    assert_eq!(body["scope"], "own");
    assert_eq!(body["status"], "enabled");
    assert_eq!(body["description"], "ops pager");
    assert_z_time(&body["createdAt"]);
    assert_eq!(body["createdAt"], body["updatedAt"]);

    // Read back: the same object, without the secret.
    let read = app.get(&format!("/v1/webhook-endpoints/{id}"), key).await;
    assert_eq!(fields(read.assert_ok(200)), ENDPOINT_FIELDS);
    for (field, value) in read.body.as_object().unwrap() {
        assert_eq!(body[field], *value, "{field}");
    }
    // By its bare UUID, in upper case.
    let bare = id.trim_start_matches("whe_").to_uppercase();
    let by_bare = app.get(&format!("/v1/webhook-endpoints/{bare}"), key).await;
    assert_eq!(by_bare.assert_ok(200)["id"], id);

    // PATCH: only what is sent changes; null clears the description.
    app.clock.advance(time::Duration::seconds(2));
    let patched = app
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            key,
            json!({"events": ["*"], "description": null}),
        )
        .await;
    let patched = patched.assert_ok(200).clone();
    assert_eq!(fields(&patched), ENDPOINT_FIELDS);
    assert_eq!(patched["events"], json!(["*"]));
    assert!(patched["description"].is_null());
    assert_eq!(patched["url"], PUBLIC_URL);
    assert_ne!(patched["updatedAt"], body["updatedAt"]);
    assert_eq!(patched["createdAt"], body["createdAt"]);
    // A patch that changes nothing changes nothing.
    app.clock.advance(time::Duration::seconds(2));
    let same = app
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            key,
            json!({"events": ["*"]}),
        )
        .await;
    assert_eq!(same.assert_ok(200)["updatedAt"], patched["updatedAt"]);
    let disabled = app
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            key,
            json!({"status": "disabled", "events": QUIET_EVENTS}),
        )
        .await;
    assert_eq!(disabled.assert_ok(200)["status"], "disabled");
    // A disabled endpoint sends no ping.
    let ping = app
        .post_empty(&format!("/v1/webhook-endpoints/{id}/test"), key)
        .await;
    let details = ping.assert_error(409, "CONFLICT");
    assert_eq!(details["endpointId"], id);
    assert_eq!(details["status"], "disabled");

    // Body validation names the field.
    let path = "/v1/webhook-endpoints";
    for (body, field) in [
        (json!({"events": ["*"]}), "url"),
        (json!({"url": PUBLIC_URL}), "events"),
        (json!({"url": PUBLIC_URL, "events": []}), "events"),
        // A plain string is `"*"` or nothing (API.md §7: "1–50 event types or `"*"`").
        (
            json!({"url": PUBLIC_URL, "events": "organization.suspended"}),
            "events",
        ),
        (json!({"url": PUBLIC_URL, "events": "all"}), "events"),
        (json!({"url": PUBLIC_URL, "events": null}), "events"),
        (
            json!({"url": PUBLIC_URL, "events": ["organization.exploded"]}),
            "events",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*", "test.ping"]}),
            "events",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (json!({"url": "/relative", "events": ["*"]}), "url"),
        (
            json!({"url": "ftp://93.184.216.34/", "events": ["*"]}),
            "url",
        ),
        (json!({"url": 5, "events": ["*"]}), "url"),
        (
            json!({"url": "https://user:pw@93.184.216.34/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "description": "x".repeat(501)}),
            "description",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "scope": "everything"}),
            "scope",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "scope": null}),
            "scope",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "signingSecret": "mine"}),
            "signingSecret",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "status": "disabled"}),
            "status",
        ),
    ] {
        let response = app.post(path, key, body.clone()).await;
        assert_invalid(&response, field);
    }
    let too_many: Vec<String> = (0..51).map(|_| "organization.created".to_owned()).collect();
    assert_invalid(
        &app.post(path, key, json!({"url": PUBLIC_URL, "events": too_many}))
            .await,
        "events",
    );
    assert_invalid(&app.post_empty(path, key).await, "body");
    let patch = format!("/v1/webhook-endpoints/{id}");
    for (body, field) in [
        (json!({"status": "auto_paused"}), "status"),
        (json!({"status": "paused"}), "status"),
        (json!({"status": null}), "status"),
        (json!({"url": null}), "url"),
        (json!({"url": "ftp://93.184.216.34/"}), "url"),
        (json!({"events": null}), "events"),
        (json!({"events": ["nope"]}), "events"),
        (json!({"scope": "all_children"}), "scope"),
        (json!({"description": "x".repeat(501)}), "description"),
    ] {
        assert_invalid(&app.patch(&patch, key, body).await, field);
    }

    // Path ids: 422 naming the parameter, for every route that takes one: `id`, as the contract
    // writes these routes (API.md §1.3, §7).
    for bad in [
        "not-an-id",
        "org_0b0c0d0e-0f10-4112-8314-151617181920",
        "whd_0b0c0d0e-0f10-4112-8314-151617181920",
    ] {
        let base = format!("/v1/webhook-endpoints/{bad}");
        assert_invalid(&app.get(&base, key).await, "id");
        assert_invalid(
            &app.patch(&base, key, json!({"status": "enabled"})).await,
            "id",
        );
        assert_invalid(&app.delete(&base, key).await, "id");
        assert_invalid(&app.get(&format!("{base}/deliveries"), key).await, "id");
        assert_invalid(&app.post_empty(&format!("{base}/test"), key).await, "id");
    }
    for bad in ["not-an-id", &id] {
        assert_invalid(
            &app.post_empty(&format!("/v1/webhook-deliveries/{bad}/replay"), key)
                .await,
            "id",
        );
    }

    // Unknown ids: 404.
    let unknown = "whe_0b0c0d0e-0f10-4112-8314-151617181920";
    let base = format!("/v1/webhook-endpoints/{unknown}");
    app.get(&base, key).await.assert_error(404, "NOT_FOUND");
    app.patch(&base, key, json!({"status": "enabled"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&base, key).await.assert_error(404, "NOT_FOUND");
    app.get(&format!("{base}/deliveries"), key)
        .await
        .assert_error(404, "NOT_FOUND");
    app.post_empty(&format!("{base}/test"), key)
        .await
        .assert_error(404, "NOT_FOUND");
    app.post_empty(
        "/v1/webhook-deliveries/whd_0b0c0d0e-0f10-4112-8314-151617181920/replay",
        key,
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // No deliveries yet.
    let deliveries = app
        .get(&format!("/v1/webhook-endpoints/{id}/deliveries"), key)
        .await;
    assert_eq!(
        *deliveries.assert_ok(200),
        json!({"items": [], "nextCursor": null})
    );

    // DELETE answers the id; the endpoint is gone.
    let deleted = app
        .delete(&format!("/v1/webhook-endpoints/{id}"), key)
        .await;
    assert_eq!(*deleted.assert_ok(200), json!({"id": id, "deleted": true}));
    app.get(&format!("/v1/webhook-endpoints/{id}"), key)
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&format!("/v1/webhook-endpoints/{id}"), key)
        .await
        .assert_error(404, "NOT_FOUND");
    let list = app.get("/v1/webhook-endpoints", key).await;
    assert!(list.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"] != id));

    // Wrong method on a known route.
    app.request(Method::PUT, "/v1/webhook-endpoints", Some(key), None)
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
}

async fn signing_secret_only_on_create_and_idempotent_create_replays_it(app: TestApp) {
    let key = &app.admin_key;
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let body = json!({"url": PUBLIC_URL, "events": QUIET_EVENTS});
    let headers = [("Idempotency-Key", idempotency_key.as_str())];
    let send = || {
        app.request_with_headers(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(key),
            Some(body.clone()),
            &headers,
        )
    };
    let first = send().await;
    let created = first.assert_ok(201).clone();
    let mut expected_fields = ENDPOINT_FIELDS.to_vec();
    expected_fields.push("signingSecret");
    assert_eq!(fields(&created), expected_fields);
    let secret = created["signingSecret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );

    // The retry replays the same answer and creates nothing.
    let again = send().await;
    assert_eq!(*again.assert_ok(201), created);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let list = app.get("/v1/webhook-endpoints", key).await;
    let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);

    // Nowhere else.
    let id = id_of(&first);
    let read = app.get(&format!("/v1/webhook-endpoints/{id}"), key).await;
    let patched = app
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            key,
            json!({"description": "no secret here"}),
        )
        .await;
    for shown in [read.assert_ok(200), patched.assert_ok(200), &items[0]] {
        assert!(shown.get("signingSecret").is_none(), "{shown}");
        assert!(!shown.to_string().contains(secret));
    }
    let deleted = app
        .delete(&format!("/v1/webhook-endpoints/{id}"), key)
        .await;
    assert!(!deleted.assert_ok(200).to_string().contains(secret));

    // The same key with another body is a conflict.
    let other = app
        .request_with_headers(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(key),
            Some(json!({"url": PUBLIC_URL, "events": ["*"]})),
            &[("Idempotency-Key", &idempotency_key)],
        )
        .await;
    other.assert_error(409, "IDEMPOTENCY_CONFLICT");
}

async fn all_children_needs_org_admin(app: TestApp) {
    let child = app.create_child("subscriber").await;
    let (_, writer) = app
        .mint_key(&child, &["webhooks:read", "webhooks:write"])
        .await;
    let (_, reader) = app.mint_key(&child, &["webhooks:read"]).await;
    let (_, neither) = app.mint_key(&child, &["credits:read"]).await;
    let firehose = json!({"url": PUBLIC_URL, "events": QUIET_EVENTS, "scope": "all_children"});

    let refused = create(&app, &writer, firehose.clone()).await;
    let details = refused.assert_error(403, "FORBIDDEN_SCOPE");
    assert_eq!(details["requiredScope"], "org:admin");
    // Their own events: any key with webhooks:write.
    let own = create(
        &app,
        &writer,
        json!({"url": PUBLIC_URL, "events": QUIET_EVENTS, "scope": "own"}),
    )
    .await;
    assert_eq!(own.assert_ok(201)["scope"], "own");

    // The partner's org:admin key may.
    let partner = create(&app, &app.admin_key, firehose.clone()).await;
    assert_eq!(partner.assert_ok(201)["scope"], "all_children");
    // ...for its own organization, not from inside a child.
    let inside = app
        .request_with_headers(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&app.admin_key),
            Some(firehose),
            &[("X-Layers-Organization", &child)],
        )
        .await;
    assert_invalid(&inside, "scope");

    // webhooks:read reads, webhooks:write writes.
    assert_eq!(
        app.get("/v1/webhook-endpoints", &reader)
            .await
            .assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let details = create(&app, &reader, json!({"url": PUBLIC_URL, "events": ["*"]}))
        .await
        .assert_error(403, "FORBIDDEN_SCOPE")
        .clone();
    assert_eq!(details["requiredScope"], "webhooks:write");
    let own_id = id_of(&own);
    for response in [
        app.patch(
            &format!("/v1/webhook-endpoints/{own_id}"),
            &reader,
            json!({"status": "disabled"}),
        )
        .await,
        app.delete(&format!("/v1/webhook-endpoints/{own_id}"), &reader)
            .await,
        app.post_empty(&format!("/v1/webhook-endpoints/{own_id}/test"), &reader)
            .await,
    ] {
        let details = response.assert_error(403, "FORBIDDEN_SCOPE");
        assert_eq!(details["requiredScope"], "webhooks:write");
    }
    for path in [
        "/v1/webhook-endpoints".to_owned(),
        format!("/v1/webhook-endpoints/{own_id}"),
        format!("/v1/webhook-endpoints/{own_id}/deliveries"),
    ] {
        let details = app
            .get(&path, &neither)
            .await
            .assert_error(403, "FORBIDDEN_SCOPE")
            .clone();
        assert_eq!(details["requiredScope"], "webhooks:read", "{path}");
    }
    // Scope comes before the path id (API.md §1.2).
    let details = app
        .get("/v1/webhook-endpoints/not-an-id", &neither)
        .await
        .assert_error(403, "FORBIDDEN_SCOPE")
        .clone();
    assert_eq!(details["requiredScope"], "webhooks:read");
}

async fn another_organizations_endpoint_is_not_found(app: TestApp) {
    let child = app.create_child("neighbour").await;
    let (_, child_key) = app
        .mint_key(&child, &["webhooks:read", "webhooks:write"])
        .await;
    let (_, other_partner) = app.new_partner("other partner").await;
    let partners = quiet_endpoint(&app, &app.admin_key).await;

    for key in [&child_key, &other_partner] {
        let base = format!("/v1/webhook-endpoints/{partners}");
        app.get(&base, key).await.assert_error(404, "NOT_FOUND");
        app.patch(&base, key, json!({"status": "disabled"}))
            .await
            .assert_error(404, "NOT_FOUND");
        app.delete(&base, key).await.assert_error(404, "NOT_FOUND");
        app.get(&format!("{base}/deliveries"), key)
            .await
            .assert_error(404, "NOT_FOUND");
        app.post_empty(&format!("{base}/test"), key)
            .await
            .assert_error(404, "NOT_FOUND");
        let list = app.get("/v1/webhook-endpoints", key).await;
        assert!(list.assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != partners));
    }
    // Untouched by all that.
    let read = app
        .get(&format!("/v1/webhook-endpoints/{partners}"), &app.admin_key)
        .await;
    assert_eq!(read.assert_ok(200)["status"], "enabled");

    // The parent manages the child's endpoints from inside it, and only from inside it.
    let acting = [("X-Layers-Organization", child.as_str())];
    let inside = app
        .request_with_headers(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&app.admin_key),
            Some(json!({"url": PUBLIC_URL, "events": QUIET_EVENTS})),
            &acting,
        )
        .await;
    inside.assert_ok(201);
    let childs = id_of(&inside);
    let seen = app.get("/v1/webhook-endpoints", &child_key).await;
    assert!(seen.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == childs));
    app.get(&format!("/v1/webhook-endpoints/{childs}"), &app.admin_key)
        .await
        .assert_error(404, "NOT_FOUND");
    let read = app
        .request_with_headers(
            Method::GET,
            &format!("/v1/webhook-endpoints/{childs}"),
            Some(&app.admin_key),
            None,
            &acting,
        )
        .await;
    assert_eq!(read.assert_ok(200)["id"], childs);

    // Inside an archived child the parent reads, and every write is 409.
    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);
    let list = app
        .request_with_headers(
            Method::GET,
            "/v1/webhook-endpoints",
            Some(&app.admin_key),
            None,
            &acting,
        )
        .await;
    list.assert_ok(200);
    let refused = app
        .request_with_headers(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&app.admin_key),
            Some(json!({"url": PUBLIC_URL, "events": QUIET_EVENTS})),
            &acting,
        )
        .await;
    let details = refused.assert_error(409, "CONFLICT");
    assert_eq!(details["organizationId"], child);
    assert_eq!(details["status"], "archived");
    let refused = app
        .request_with_headers(
            Method::DELETE,
            &format!("/v1/webhook-endpoints/{childs}"),
            Some(&app.admin_key),
            None,
            &acting,
        )
        .await;
    refused.assert_error(409, "CONFLICT");
}

async fn lists_are_paged(app: TestApp) {
    let key = &app.admin_key;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(quiet_endpoint(&app, key).await);
        app.clock.advance(time::Duration::milliseconds(5));
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/webhook-endpoints?limit=2".to_owned(),
            Some(c) => format!("/v1/webhook-endpoints?limit=2&cursor={c}"),
        };
        let page = app.get(&path, key).await;
        let body = page.assert_ok(200);
        assert_eq!(fields(body), ["items", "nextCursor"]);
        for item in body["items"].as_array().unwrap() {
            assert_eq!(fields(item), ENDPOINT_FIELDS);
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    for query in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=garbage",
        "lmit=2",
    ] {
        let field = query.split('=').next().unwrap();
        assert_invalid(
            &app.get(&format!("/v1/webhook-endpoints?{query}"), key)
                .await,
            field,
        );
        assert_invalid(
            &app.get(
                &format!("/v1/webhook-endpoints/{}/deliveries?{query}", ids[0]),
                key,
            )
            .await,
            field,
        );
    }
    // A cursor of the endpoint listing is not one of the delivery listing.
    let first = app.get("/v1/webhook-endpoints?limit=1", key).await;
    let cursor = first.body["nextCursor"].as_str().unwrap();
    assert_invalid(
        &app.get(
            &format!(
                "/v1/webhook-endpoints/{}/deliveries?cursor={cursor}",
                ids[0]
            ),
            key,
        )
        .await,
        "cursor",
    );
}

async fn new_routes_are_documented(app: TestApp) {
    let spec = app.openapi().await;
    let paths = spec["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/webhook-endpoints", &["get", "post"][..]),
        ("/v1/webhook-endpoints/{id}", &["get", "patch", "delete"]),
        ("/v1/webhook-endpoints/{id}/deliveries", &["get"]),
        ("/v1/webhook-endpoints/{id}/test", &["post"]),
        ("/v1/webhook-deliveries/{id}/replay", &["post"]),
        ("/v1/audit-log", &["get"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is described");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has a success response"
            );
            let mut expected = vec!["401", "403", "404", "422", "429", "503"];
            let mutating = *method != "get";
            if mutating {
                expected.extend(["409", "413"]);
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            let headers: Vec<&str> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert!(
                headers.contains(&"X-Layers-Organization"),
                "{method} {path}"
            );
            assert_eq!(
                headers.contains(&"Idempotency-Key"),
                mutating,
                "{method} {path}"
            );
        }
    }
    let created = &paths["/v1/webhook-endpoints"]["post"]["responses"]["201"];
    assert!(created.is_object(), "create answers 201");
    for (path, status) in [
        ("/v1/webhook-endpoints/{id}/test", "202"),
        ("/v1/webhook-deliveries/{id}/replay", "202"),
    ] {
        assert!(
            paths[path]["post"]["responses"][status].is_object(),
            "{path}"
        );
    }
}

async fn https_and_public_addresses_only(app: ModeApp) {
    let key = &app.admin_key;
    for url in [
        "http://93.184.216.34/hooks",
        "https://127.0.0.1/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[fd00::1]/hooks",
        "https://0.0.0.0/hooks",
        "https://localhost/hooks",
    ] {
        let response = create(&app, key, json!({"url": url, "events": ["*"]})).await;
        assert_invalid(&response, "url");
    }
    let id = quiet_endpoint(&app, key).await;
    let moved = app
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            key,
            json!({"url": "https://127.0.0.1/elsewhere"}),
        )
        .await;
    assert_invalid(&moved, "url");
    let read = app.get(&format!("/v1/webhook-endpoints/{id}"), key).await;
    assert_eq!(read.assert_ok(200)["url"], PUBLIC_URL);
}

async fn private_addresses_are_accepted_in_local_development(app: TestApp) {
    let created = create(
        &app,
        &app.admin_key,
        json!({"url": "http://127.0.0.1:9/hooks", "events": QUIET_EVENTS}),
    )
    .await;
    assert_eq!(created.assert_ok(201)["url"], "http://127.0.0.1:9/hooks");
}

// ---------------------------------------------------------------------------------------------
// Deliveries to a receiver on this machine
// ---------------------------------------------------------------------------------------------

/// Checks a delivered request's signature with the endpoint's secret (API.md §7).
#[track_caller]
fn assert_signed(received: &Received, secret: &str) {
    let signature = received.header("x-layers-signature").unwrap();
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{signature}"));
    let at = domain::Timestamp::from_unix_micros(t * 1_000_000).unwrap();
    let expected = domain::webhooks::SigningSecret::from_stored(secret.to_owned())
        .signature(at, &received.body);
    assert_eq!(signature, expected);
    assert_eq!(received.header("content-type"), Some("application/json"));
}

/// The endpoint's deliveries once none is pending any more.
async fn settled_deliveries(app: &TestApp, endpoint: &str, key: &str) -> Vec<Value> {
    let path = format!("/v1/webhook-endpoints/{endpoint}/deliveries");
    for _ in 0..100 {
        let list = app.get(&path, key).await;
        let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
        if items.iter().all(|d| d["status"] != "pending") {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries of {endpoint} still pending");
}

async fn test_ping_and_replay_reach_the_receiver(app: TestApp) {
    let receiver = Receiver::start().await;
    let key = &app.admin_key;
    let created = create(
        &app,
        key,
        json!({"url": receiver.url, "events": QUIET_EVENTS}),
    )
    .await;
    let endpoint = id_of(&created);
    let secret = created.assert_ok(201)["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();

    let ping = app
        .post_empty(&format!("/v1/webhook-endpoints/{endpoint}/test"), key)
        .await;
    // Each starts an outbound delivery: the `work` class (rate_limit::WORK_ROUTES names the
    // route patterns, so a renamed pattern must be renamed there too).
    assert_eq!(ping.headers["x-ratelimit-endpoint-class"], "work");
    let delivery = ping.assert_ok(202).clone();
    assert_eq!(fields(&delivery), DELIVERY_FIELDS);
    assert!(delivery["id"].as_str().unwrap().starts_with("whd_"));
    assert!(delivery["eventId"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(delivery["endpointId"], endpoint);
    assert_eq!(delivery["eventType"], "test.ping");
    assert_z_time(&delivery["createdAt"]);

    let received = receiver.wait_for(1).await;
    let event = received[0].json();
    assert_eq!(fields(&event), ["id", "type", "createdAt", "data"]);
    assert_eq!(event["id"], delivery["eventId"]);
    assert_eq!(event["type"], "test.ping");
    assert_z_time(&event["createdAt"]);
    assert_eq!(
        event["data"],
        json!({"organizationId": app.admin_org, "object": {"endpointId": endpoint}, "reason": null})
    );
    assert_eq!(
        received[0].header("x-layers-event-id"),
        delivery["eventId"].as_str()
    );
    assert_signed(&received[0], &secret);

    let deliveries = settled_deliveries(&app, &endpoint, key).await;
    assert_eq!(deliveries.len(), 1);
    let done = &deliveries[0];
    assert_eq!(fields(done), DELIVERY_FIELDS);
    assert_eq!(done["id"], delivery["id"]);
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["lastResponseStatus"], 200);
    assert!(done["lastError"].is_null());
    assert_z_time(&done["lastAttemptAt"]);
    assert!(done["nextAttemptAt"].is_null());

    // A replay: a new delivery of the same event under a new id naming the original.
    let delivery_id = delivery["id"].as_str().unwrap();
    let replay_key = uuid::Uuid::new_v4().to_string();
    let replay_path = format!("/v1/webhook-deliveries/{delivery_id}/replay");
    let replay = app
        .request_with_headers(
            Method::POST,
            &replay_path,
            Some(key),
            None,
            &[("Idempotency-Key", &replay_key)],
        )
        .await;
    assert_eq!(replay.headers["x-ratelimit-endpoint-class"], "work");
    let replayed = replay.assert_ok(202).clone();
    assert_eq!(fields(&replayed), DELIVERY_FIELDS);
    assert_ne!(replayed["id"], delivery["id"]);
    assert_ne!(replayed["eventId"], delivery["eventId"]);
    assert_eq!(replayed["endpointId"], endpoint);
    assert_eq!(replayed["eventType"], "test.ping");
    // Its retry with the same key is answered from the record: nothing is sent again.
    let again = app
        .request_with_headers(
            Method::POST,
            &replay_path,
            Some(key),
            None,
            &[("Idempotency-Key", &replay_key)],
        )
        .await;
    assert_eq!(again.assert_ok(202)["id"], replayed["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let received = receiver.wait_for(2).await;
    let second = received[1].json();
    assert_eq!(
        fields(&second),
        ["id", "type", "createdAt", "replayOf", "data"]
    );
    assert_eq!(second["id"], replayed["eventId"]);
    assert_eq!(second["replayOf"], event["id"]);
    assert_eq!(second["type"], event["type"]);
    assert_eq!(second["data"], event["data"]);
    assert_z_time(&second["createdAt"]);
    assert_signed(&received[1], &secret);
    let deliveries = settled_deliveries(&app, &endpoint, key).await;
    assert_eq!(deliveries.len(), 2, "the retry created no delivery");
    assert_eq!(deliveries[0]["id"], replayed["id"], "newest first");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 2);

    // Another organization's delivery does not exist for the caller.
    let (_, other) = app.new_partner("other partner").await;
    app.post_empty(&replay_path, &other)
        .await
        .assert_error(404, "NOT_FOUND");
    let child = app.create_child("no access").await;
    let (_, child_key) = app.mint_key(&child, &["webhooks:write"]).await;
    app.post_empty(&replay_path, &child_key)
        .await
        .assert_error(404, "NOT_FOUND");
    // A disabled endpoint replays nothing.
    app.patch(
        &format!("/v1/webhook-endpoints/{endpoint}"),
        key,
        json!({"status": "disabled"}),
    )
    .await
    .assert_ok(200);
    let details = app
        .post_empty(&replay_path, key)
        .await
        .assert_error(409, "CONFLICT")
        .clone();
    assert_eq!(
        details,
        json!({"endpointId": endpoint, "status": "disabled"})
    );
}

async fn an_event_shows_the_organization_as_the_api_does(app: TestApp) {
    let receiver = Receiver::start().await;
    let key = &app.admin_key;
    let created = create(
        &app,
        key,
        json!({"url": receiver.url, "events": ["organization.suspended"], "scope": "all_children"}),
    )
    .await;
    let endpoint = id_of(&created);
    let secret = created.assert_ok(201)["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let child = app.create_child("watched").await;
    let suspended = app
        .post(
            &format!("/v1/organizations/{child}/suspend"),
            key,
            json!({"reason": "fraud review"}),
        )
        .await;
    let shown = suspended.assert_ok(200).clone();

    let received = receiver.wait_for(1).await;
    assert_signed(&received[0], &secret);
    let event = received[0].json();
    assert_eq!(event["type"], "organization.suspended");
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_z_time(&event["createdAt"]);
    assert_eq!(
        fields(&event["data"]),
        ["organizationId", "object", "reason"]
    );
    assert_eq!(event["data"]["organizationId"], child);
    assert_eq!(event["data"]["reason"], "fraud review");
    // The organization object exactly as the API shows it, six-digit timestamps included.
    assert_eq!(event["data"]["object"], shown);
    assert_org_time(&event["data"]["object"]["updatedAt"]);

    let deliveries = settled_deliveries(&app, &endpoint, key).await;
    assert_eq!(deliveries.len(), 1, "only the suspension: {deliveries:?}");
    assert_eq!(deliveries[0]["eventType"], "organization.suspended");
    assert_eq!(deliveries[0]["eventId"], event["id"]);
    assert_eq!(deliveries[0]["status"], "succeeded");
}

/// API.md §7: `events` is "1–50 event types or `"*"`" — the plain string `"*"` is accepted on
/// create and on PATCH, like `["*"]`; both show as `["*"]` (docs/decisions.md), and the OpenAPI
/// document accepts both. Any other plain string is 422 naming `events`, as is a PATCH's `null`.
async fn every_event_type_is_star_written_either_way(app: TestApp) {
    let key = &app.admin_key;
    let created = create(&app, key, json!({"url": PUBLIC_URL, "events": "*"})).await;
    assert_eq!(created.assert_ok(201)["events"], json!(["*"]));
    let path = format!("/v1/webhook-endpoints/{}", id_of(&created));
    assert_eq!(
        app.get(&path, key).await.assert_ok(200)["events"],
        json!(["*"])
    );

    let narrowed = app.patch(&path, key, json!({"events": QUIET_EVENTS})).await;
    assert_eq!(narrowed.assert_ok(200)["events"], json!(QUIET_EVENTS));
    let widened = app.patch(&path, key, json!({"events": "*"})).await;
    assert_eq!(widened.assert_ok(200)["events"], json!(["*"]));
    for bad in [
        json!("organization.suspended"),
        json!(""),
        json!(null),
        json!(5),
    ] {
        let refused = app.patch(&path, key, json!({"events": bad})).await;
        assert_invalid(&refused, "events");
    }

    let spec = app.openapi().await;
    for (method, path) in [
        ("post", "/v1/webhook-endpoints"),
        ("patch", "/v1/webhook-endpoints/{id}"),
    ] {
        let body =
            &spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        let schema = match body["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                &spec["components"]["schemas"][name]
            }
            None => body,
        };
        let forms = schema["properties"]["events"]["oneOf"].as_array().unwrap();
        assert!(
            forms.contains(&json!({"type": "string", "enum": ["*"]})),
            "{method} {path}: {forms:?}"
        );
        assert!(
            forms
                .iter()
                .any(|f| f["type"] == "array" && f["items"]["enum"] == json!(["*"])),
            "{method} {path}: {forms:?}"
        );
    }
}
