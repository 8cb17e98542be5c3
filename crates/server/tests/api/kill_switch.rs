use reqwest::Method;
use serde_json::json;

use crate::store_tests;
use crate::support::{assert_z_time, TestApp};

store_tests!(
    a_suspended_childs_keys_get_kill_switch_on_every_route,
    the_parent_still_manages_a_suspended_child,
    resume_admits_the_next_request,
    suspending_a_top_level_organization_cuts_off_its_children_too,
);

async fn a_suspended_childs_keys_get_kill_switch_on_every_route(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (_, key) = app.mint_key(&child, &["*"]).await;
    app.get("/v1/whoami", &key).await.assert_ok(200);
    let suspended = app
        .post_empty(
            &format!("/v1/organizations/{child}/suspend"),
            &app.admin_key,
        )
        .await;
    suspended.assert_ok(200);

    let routes = [
        (Method::GET, "/v1/whoami".to_owned()),
        (Method::GET, "/v1/organizations".to_owned()),
        (Method::POST, "/v1/organizations".to_owned()),
        (Method::GET, format!("/v1/organizations/{child}")),
        (Method::PATCH, format!("/v1/organizations/{child}")),
        (Method::DELETE, format!("/v1/organizations/{child}")),
        (Method::POST, format!("/v1/organizations/{child}/suspend")),
        (Method::POST, format!("/v1/organizations/{child}/resume")),
        (Method::GET, format!("/v1/organizations/{child}/api-keys")),
        (Method::POST, format!("/v1/organizations/{child}/api-keys")),
        (
            Method::DELETE,
            format!("/v1/organizations/{child}/api-keys/key_00000000-0000-4000-8000-000000000000"),
        ),
        (Method::GET, "/v1/no-such-route".to_owned()),
        (Method::PUT, "/v1/whoami".to_owned()),
        (Method::GET, "/".to_owned()),
    ];
    for (method, path) in routes {
        let response = app
            .request(method.clone(), &path, Some(&key), Some(json!({})))
            .await;
        let details = response.assert_error(503, "KILL_SWITCH");
        assert_eq!(details["scope"], "organization", "{method} {path}");
        assert_eq!(details["organizationId"], child);
        assert_z_time(&details["suspendedAt"]);
    }
}

async fn the_parent_still_manages_a_suspended_child(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (key_id, key) = app.mint_key(&child, &["*"]).await;
    app.post_empty(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);

    assert_eq!(
        app.get(&format!("/v1/organizations/{child}"), &app.admin_key)
            .await
            .assert_ok(200)["status"],
        "suspended"
    );
    let patched = app
        .patch(
            &format!("/v1/organizations/{child}"),
            &app.admin_key,
            json!({"name": "Acme (paused)"}),
        )
        .await;
    assert_eq!(patched.assert_ok(200)["status"], "suspended");
    app.get(
        &format!("/v1/organizations/{child}/api-keys"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
    app.get("/v1/whoami", &app.admin_key).await.assert_ok(200);
    // Authentication comes before the kill switch: a revoked key of a suspended org is 401.
    app.delete(
        &format!("/v1/organizations/{child}/api-keys/{key_id}"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
    app.get("/v1/whoami", &key)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let (_, fresh) = app.mint_key(&child, &["*"]).await;
    app.get("/v1/whoami", &fresh)
        .await
        .assert_error(503, "KILL_SWITCH");
    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    app.get("/v1/whoami", &fresh).await.assert_ok(200);
    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);
    app.get("/v1/whoami", &fresh)
        .await
        .assert_error(401, "UNAUTHENTICATED");
}

async fn resume_admits_the_next_request(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (_, key) = app.mint_key(&child, &["credits:read"]).await;
    for _ in 0..5 {
        app.post_empty(
            &format!("/v1/organizations/{child}/suspend"),
            &app.admin_key,
        )
        .await
        .assert_ok(200);
        app.get("/v1/whoami", &key)
            .await
            .assert_error(503, "KILL_SWITCH");
        app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
            .await
            .assert_ok(200);
        let whoami = app.get("/v1/whoami", &key).await;
        assert_eq!(whoami.assert_ok(200)["organizationId"], child);
    }
}

async fn suspending_a_top_level_organization_cuts_off_its_children_too(app: TestApp) {
    let (partner, partner_key) = app.new_partner("Platform-suspended partner").await;
    let child = app.create_child_of(&partner_key, "Their customer").await;
    let minted = app
        .post(
            &format!("/v1/organizations/{child}/api-keys"),
            &partner_key,
            json!({"name": "k", "scopes": ["*"]}),
        )
        .await;
    let child_key = minted.assert_ok(201)["secret"].as_str().unwrap().to_owned();
    app.suspend_top_level(&partner).await;
    for key in [&partner_key, &child_key] {
        let details = app
            .get("/v1/whoami", key)
            .await
            .assert_error(503, "KILL_SWITCH")
            .clone();
        assert_eq!(details["organizationId"], partner);
    }
    app.get("/v1/whoami", &app.admin_key).await.assert_ok(200);
}
