//! A parent acting inside one of its children with `X-Layers-Organization` (API.md §2.3).

use reqwest::Method;

use crate::store_tests;
use crate::support::TestApp;

store_tests!(
    a_parent_acts_inside_its_child,
    only_a_parents_org_admin_key_may_act_and_only_in_a_direct_child,
    inside_an_archived_child_reads_work_and_writes_are_conflicts,
    the_header_is_ignored_on_the_control_planes_own_routes,
    a_wrong_method_or_route_is_405_or_404_whatever_the_header_holds,
);

const HEADER: &str = "X-Layers-Organization";

async fn with_header(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    org: &str,
) -> crate::support::Response {
    app.request_with_headers(method, path, Some(key), None, &[(HEADER, org)])
        .await
}

async fn a_parent_acts_inside_its_child(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (leaked, leaked_secret) = app.mint_key(&child, &["credits:read"]).await;
    let listed = with_header(&app, Method::GET, "/v1/api-keys", &app.admin_key, &child).await;
    let items = listed.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], leaked);
    // The parent manages a suspended child too: kills its leaked key from inside.
    app.post_empty(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
    let killed = with_header(
        &app,
        Method::POST,
        &format!("/v1/api-keys/{leaked}/kill"),
        &app.admin_key,
        &child,
    )
    .await;
    assert_eq!(killed.assert_ok(200)["killed"], true);
    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    let refused = app.get("/v1/whoami", &leaked_secret).await;
    assert_eq!(refused.assert_error(503, "KILL_SWITCH")["scope"], "key");
    // Bare and upper-case ids work in the header too.
    let bare = child.strip_prefix("org_").unwrap().to_uppercase();
    with_header(&app, Method::GET, "/v1/api-keys", &app.admin_key, &bare)
        .await
        .assert_ok(200);
}

async fn only_a_parents_org_admin_key_may_act_and_only_in_a_direct_child(app: TestApp) {
    let child = app.create_child("Acme").await;
    let sibling = app.create_child("Sibling").await;
    let (_, child_key) = app.mint_key(&child, &["*"]).await;
    // A key without org:admin: 403, before the id is even looked at.
    for target in [sibling.as_str(), "garbage"] {
        let refused = with_header(&app, Method::GET, "/v1/api-keys", &child_key, target).await;
        assert_eq!(
            refused.assert_error(403, "FORBIDDEN_SCOPE")["requiredScope"],
            "org:admin"
        );
    }
    let malformed = with_header(
        &app,
        Method::GET,
        "/v1/api-keys",
        &app.admin_key,
        "org_nope",
    )
    .await;
    assert_eq!(
        malformed.assert_error(422, "VALIDATION")["fields"][0]["field"],
        HEADER
    );
    let (other_partner, other_key) = app.new_partner("Other").await;
    let theirs = app.create_child_of(&other_key, "Theirs").await;
    for target in [
        theirs.as_str(),
        other_partner.as_str(),
        app.admin_org.as_str(),
    ] {
        with_header(&app, Method::GET, "/v1/api-keys", &app.admin_key, target)
            .await
            .assert_error(404, "NOT_FOUND");
    }
}

async fn inside_an_archived_child_reads_work_and_writes_are_conflicts(app: TestApp) {
    let child = app.create_child("Leaving").await;
    let (key, _) = app.mint_key(&child, &["*"]).await;
    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);
    let listed = with_header(&app, Method::GET, "/v1/api-keys", &app.admin_key, &child).await;
    assert_eq!(listed.assert_ok(200)["items"][0]["status"], "revoked");
    for path in [
        format!("/v1/api-keys/{key}/kill"),
        format!("/v1/api-keys/{key}/rotate"),
    ] {
        let refused = with_header(&app, Method::POST, &path, &app.admin_key, &child).await;
        let details = refused.assert_error(409, "CONFLICT");
        assert_eq!(details["status"], "archived");
        assert_eq!(details["organizationId"], child);
    }
}

async fn the_header_is_ignored_on_the_control_planes_own_routes(app: TestApp) {
    let child = app.create_child("Acme").await;
    for value in ["garbage", child.as_str()] {
        let listed = with_header(
            &app,
            Method::GET,
            "/v1/organizations",
            &app.admin_key,
            value,
        )
        .await;
        assert_eq!(
            listed.assert_ok(200)["items"][0]["id"],
            child,
            "lists the caller's own children"
        );
        with_header(
            &app,
            Method::GET,
            &format!("/v1/organizations/{child}"),
            &app.admin_key,
            value,
        )
        .await
        .assert_ok(200);
    }
}

/// API.md §1.1: a known route with a wrong method is `405`, an unknown route `404`, before the
/// header is looked at; on the route's own methods the header is still checked.
async fn a_wrong_method_or_route_is_405_or_404_whatever_the_header_holds(app: TestApp) {
    let trace = Method::from_bytes(b"TRACE").unwrap();
    for org in ["0", "org_00000000-0000-4000-8000-000000000000"] {
        for (method, path) in [
            (trace.clone(), "/v1/whoami"),
            (Method::POST, "/v1/credits"),
            (Method::DELETE, "/v1/credits/reservations"),
        ] {
            with_header(&app, method.clone(), path, &app.admin_key, org)
                .await
                .assert_error(405, "METHOD_NOT_ALLOWED");
        }
        with_header(&app, Method::GET, "/v1/no-such-route", &app.admin_key, org)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    with_header(&app, Method::GET, "/v1/credits", &app.admin_key, "0")
        .await
        .assert_error(422, "VALIDATION");
    with_header(
        &app,
        Method::GET,
        "/v1/credits",
        &app.admin_key,
        "org_00000000-0000-4000-8000-000000000000",
    )
    .await
    .assert_error(404, "NOT_FOUND");
}
