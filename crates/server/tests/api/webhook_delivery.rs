//! Webhook deliveries end to end (API.md §7), to a real receiver on a random port: signed (checked
//! here with this file's own HMAC), retried on the schedule with time moved through the clock
//! port rather than slept, a 4xx not retried, an endpoint paused after 20 failures in a row, and —
//! the kill switch — nothing delivered to a suspended child's endpoints until resume, then every
//! held event in the order it was recorded, while the parent's firehose hears of the suspension.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::receiver::{Received, Receiver};
use crate::store_tests;
use crate::support::{Response, TestApp};

store_tests!(
    deliveries_are_signed_and_a_500_is_retried_on_schedule,
    late_and_slow_retries_keep_the_schedule_and_a_hold_moves_it,
    a_400_is_not_retried,
    twenty_failures_in_a_row_pause_the_endpoint,
    a_suspended_childs_deliveries_wait_for_resume_and_keep_their_order,
);

/// A request as the parent acting inside `child` (`X-Layers-Organization`).
async fn inside(
    app: &TestApp,
    child: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    app.request_with_headers(
        method,
        path,
        Some(&app.admin_key),
        body,
        &[("X-Layers-Organization", child)],
    )
    .await
}

/// An endpoint of `child` (created by its parent acting inside it): its id and signing secret.
async fn endpoint_of(app: &TestApp, child: &str, url: &str, events: Value) -> (String, String) {
    let created = inside(
        app,
        child,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(json!({"url": url, "events": events})),
    )
    .await;
    let body = created.assert_ok(201);
    (
        body["id"].as_str().unwrap().to_owned(),
        body["signingSecret"].as_str().unwrap().to_owned(),
    )
}

async fn rename(app: &TestApp, child: &str, name: &str) {
    app.patch(
        &format!("/v1/organizations/{child}"),
        &app.admin_key,
        json!({"name": name}),
    )
    .await
    .assert_ok(200);
}

/// The endpoint's deliveries, oldest first.
async fn deliveries(app: &TestApp, child: &str, endpoint: &str) -> Vec<Value> {
    let path = format!("/v1/webhook-endpoints/{endpoint}/deliveries?limit=100");
    let listed = inside(app, child, Method::GET, &path, None).await;
    let mut items = listed.assert_ok(200)["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

/// Polls the endpoint's deliveries until `done` holds for them (at most 20 s).
async fn deliveries_when(
    app: &TestApp,
    child: &str,
    endpoint: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..200 {
        let items = deliveries(app, child, endpoint).await;
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "deliveries never settled: {:?}",
        deliveries(app, child, endpoint).await
    );
}

fn instant(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap(), &Rfc3339).unwrap()
}

/// `X-Layers-Signature: t=<secs>,v1=<hex>` checked with an HMAC-SHA256 computed here, over
/// `"<t>.<raw body>"` with the endpoint's secret; returns `t`.
#[track_caller]
fn verify_signature(received: &Received, secret: &str) -> i64 {
    let header = received.header("x-layers-signature").unwrap();
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("malformed signature header {header}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies");
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert_eq!(
        received.header("x-layers-event-id"),
        received.json()["id"].as_str(),
        "the event id header names the event"
    );
    t.parse().unwrap()
}

/// How long until the delivery's next attempt is due, by the server's clock.
fn due_in(app: &TestApp, delivery: &Value) -> time::Duration {
    let now = app.clock_now();
    instant(&delivery["nextAttemptAt"]) - now
}

async fn deliveries_are_signed_and_a_500_is_retried_on_schedule(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let child = app.create_child("Hooked").await;
    let (endpoint, secret) =
        endpoint_of(&app, &child, &receiver.url, json!(["organization.updated"])).await;
    rename(&app, &child, "Renamed").await;

    let first = receiver.wait_for(1).await;
    let t = verify_signature(&first[0], &secret);
    let now = app.clock_now().unix_timestamp();
    assert!((now - t).abs() < 60, "signed now: t={t}, now={now}");
    let event = first[0].json();
    assert_eq!(event["type"], "organization.updated");
    assert_eq!(event["data"]["organizationId"], child);
    assert_eq!(event["data"]["object"]["name"], "Renamed");

    // Retries are due 30 s, 1 min and 5 min after the first try, with time moved through the
    // clock port: on the schedule, though the worker gets to each a second late.
    let mut first_try = None;
    for (attempt, offset) in [(1, 30), (2, 60), (3, 300)] {
        let items = deliveries_when(&app, &child, &endpoint, |d| {
            d[0]["attempts"] == attempt && d[0]["nextAttemptAt"].is_string()
        })
        .await;
        let delivery = &items[0];
        assert_eq!(delivery["status"], "pending");
        assert_eq!(delivery["lastResponseStatus"], 500);
        assert_eq!(delivery["lastError"], "the endpoint answered 500");
        let next = instant(&delivery["nextAttemptAt"]);
        // The first try started at most when it ended (`lastAttemptAt`).
        let first_try = *first_try.get_or_insert(next - time::Duration::seconds(30));
        assert!(first_try <= instant(&delivery["lastAttemptAt"]));
        assert_eq!(next - first_try, time::Duration::seconds(offset));
        // Not before it is due…
        app.clock
            .advance(due_in(&app, delivery) - time::Duration::seconds(10));
        receiver
            .assert_stays_at(attempt, Duration::from_millis(1_000))
            .await;
        // …and promptly once it is.
        if attempt == 3 {
            receiver.answer(200);
        }
        app.clock.advance(time::Duration::seconds(11));
        receiver.wait_for(attempt + 1).await;
    }
    let items = deliveries_when(&app, &child, &endpoint, |d| d[0]["status"] == "succeeded").await;
    assert_eq!(items[0]["attempts"], 4);
    assert_eq!(items[0]["lastResponseStatus"], 200);
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    for request in &received {
        verify_signature(request, &secret);
        assert_eq!(
            request.body, received[0].body,
            "every attempt sends the event as recorded"
        );
    }
}

/// API.md §7: retries at 30 s, 1 min, 5 min, … "after the first try" — anchored there, so a
/// retry the worker starts late, or the receiver answers slowly, moves no later one — and "time
/// held does not use up retries": a retry that fell due while the owner was suspended goes out
/// after the resume, and the next waits its full gap from then (docs/decisions.md).
async fn late_and_slow_retries_keep_the_schedule_and_a_hold_moves_it(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let child = app.create_child("Flaky receiver").await;
    let (endpoint, _) =
        endpoint_of(&app, &child, &receiver.url, json!(["organization.updated"])).await;
    rename(&app, &child, "Renamed").await;
    let pending = |attempts: u32| {
        move |d: &[Value]| d[0]["attempts"] == attempts && d[0]["nextAttemptAt"].is_string()
    };
    let first = deliveries_when(&app, &child, &endpoint, pending(1)).await;
    let first_try = instant(&first[0]["nextAttemptAt"]) - time::Duration::seconds(30);

    // The worker gets to the second attempt 15 s late, and the receiver takes 1.5 s to answer.
    receiver.hold();
    app.clock
        .advance(due_in(&app, &first[0]) + time::Duration::seconds(15));
    receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    receiver.release();
    let second = deliveries_when(&app, &child, &endpoint, pending(2)).await;
    let ended = instant(&second[0]["lastAttemptAt"]);
    assert!(
        ended - first_try >= time::Duration::seconds(46),
        "late and slow"
    );
    assert_eq!(
        instant(&second[0]["nextAttemptAt"]) - first_try,
        time::Duration::minutes(1),
        "still the first try plus one minute"
    );

    // Suspended until ten minutes after the third attempt was due: nothing goes out meanwhile.
    let suspend = format!("/v1/organizations/{child}/suspend");
    app.post_empty(&suspend, &app.admin_key)
        .await
        .assert_ok(200);
    app.clock
        .advance(due_in(&app, &second[0]) + time::Duration::minutes(10));
    receiver
        .assert_stays_at(2, Duration::from_millis(1_500))
        .await;
    let held = deliveries(&app, &child, &endpoint).await;
    assert_eq!(
        (&held[0]["status"], &held[0]["attempts"]),
        (&json!("held"), &json!(2))
    );
    let resume = format!("/v1/organizations/{child}/resume");
    app.post_empty(&resume, &app.admin_key).await.assert_ok(200);
    let resumed = app.clock_now();
    receiver.wait_for(3).await;
    let third = deliveries_when(&app, &child, &endpoint, pending(3)).await;
    let next = instant(&third[0]["nextAttemptAt"]);
    // The schedule's next point (the first try plus 5 min) passed during the hold; the next
    // retry waits the whole gap (5 min − 1 min) from the attempt that went out after the resume.
    assert!(
        next >= resumed + time::Duration::minutes(4),
        "next {next}, resumed {resumed}"
    );
    assert!(next <= instant(&third[0]["lastAttemptAt"]) + time::Duration::minutes(4));
}

async fn a_400_is_not_retried(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(400);
    let child = app.create_child("Strict").await;
    let (endpoint, _) =
        endpoint_of(&app, &child, &receiver.url, json!(["organization.updated"])).await;
    rename(&app, &child, "Once").await;
    receiver.wait_for(1).await;
    let items = deliveries_when(&app, &child, &endpoint, |d| d[0]["status"] == "failed").await;
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["nextAttemptAt"], Value::Null);
    app.clock.advance(time::Duration::hours(25));
    receiver
        .assert_stays_at(1, Duration::from_millis(1_500))
        .await;
}

async fn twenty_failures_in_a_row_pause_the_endpoint(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(410);
    let child = app.create_child("Gone").await;
    let (endpoint, _) =
        endpoint_of(&app, &child, &receiver.url, json!(["organization.updated"])).await;
    let path = format!("/v1/webhook-endpoints/{endpoint}");
    for i in 0..20 {
        let status = inside(&app, &child, Method::GET, &path, None).await;
        assert_eq!(
            status.assert_ok(200)["status"],
            "enabled",
            "after {i} failures"
        );
        rename(&app, &child, &format!("Attempt {i}")).await;
        receiver.wait_for(i + 1).await;
        deliveries_when(&app, &child, &endpoint, |d| {
            d.len() == i + 1 && d.iter().all(|d| d["status"] == "failed")
        })
        .await;
    }
    let paused = inside(&app, &child, Method::GET, &path, None).await;
    assert_eq!(paused.assert_ok(200)["status"], "auto_paused");
    // Paused: a new event is not sent.
    rename(&app, &child, "Unheard").await;
    receiver
        .assert_stays_at(20, Duration::from_millis(1_500))
        .await;
    // Enabled again, it is sent what happens next.
    receiver.answer(204);
    inside(
        &app,
        &child,
        Method::PATCH,
        &path,
        Some(json!({"status": "enabled"})),
    )
    .await
    .assert_ok(200);
    rename(&app, &child, "Heard").await;
    let received = receiver.wait_for(21).await;
    assert_eq!(received[20].json()["data"]["object"]["name"], "Heard");
}

async fn a_suspended_childs_deliveries_wait_for_resume_and_keep_their_order(app: TestApp) {
    let child_receiver = Receiver::start().await;
    let firehose_receiver = Receiver::start().await;
    let child = app.create_child("Paused customer").await;
    app.grant(&app.admin_org.clone(), 1_000).await;
    let (endpoint, secret) = endpoint_of(&app, &child, &child_receiver.url, json!(["*"])).await;
    let firehose = app
        .post(
            "/v1/webhook-endpoints",
            &app.admin_key,
            json!({
                "url": firehose_receiver.url,
                "events": ["organization.suspended", "organization.resumed"],
                "scope": "all_children",
            }),
        )
        .await;
    firehose.assert_ok(201);

    // The first event's delivery is held open by the receiver; the next one queues behind it:
    // deliveries are pending when the suspension lands.
    child_receiver.hold();
    rename(&app, &child, "Before the suspension").await;
    child_receiver.wait_for(1).await;
    rename(&app, &child, "Pending at the suspension").await;
    app.post(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
        json!({"reason": "unpaid invoice"}),
    )
    .await
    .assert_ok(200);
    // New events keep arriving while it is suspended.
    rename(&app, &child, "Renamed while suspended").await;
    app.allocate(&child, 250).await;
    child_receiver.release();

    // The firehose is the parent's: it hears of the suspension while the child is suspended.
    let heard = firehose_receiver.wait_for(1).await;
    let suspended = heard[0].json();
    assert_eq!(suspended["type"], "organization.suspended");
    assert_eq!(suspended["data"]["organizationId"], child);
    assert_eq!(suspended["data"]["reason"], "unpaid invoice");

    // The child's endpoint gets nothing more — not even once its retry would be due.
    app.clock.advance(time::Duration::minutes(2));
    child_receiver
        .assert_stays_at(1, Duration::from_millis(2_000))
        .await;
    let held = deliveries(&app, &child, &endpoint).await;
    let shown: Vec<_> = held.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(shown[0], "succeeded");
    assert!(
        shown[1..].iter().all(|s| *s == "held"),
        "pending deliveries of a suspended owner show held: {shown:?}"
    );
    assert!(
        held[1..].iter().all(|d| d["attempts"] == 0),
        "held time uses no attempt"
    );

    app.post_empty(&format!("/v1/organizations/{child}/resume"), &app.admin_key)
        .await
        .assert_ok(200);
    let resumed_at = std::time::Instant::now();
    let heard = firehose_receiver.wait_for(2).await;
    assert_eq!(heard[1].json()["type"], "organization.resumed");

    // Every event, exactly as recorded, in the order it was recorded.
    let expected = deliveries(&app, &child, &endpoint).await;
    let received = child_receiver.wait_for(expected.len()).await;
    let first_after_resume = received[1].arrived.saturating_duration_since(resumed_at);
    println!("first held delivery arrived {first_after_resume:?} after resume answered");
    let event_ids: Vec<_> = received
        .iter()
        .map(|r| r.header("x-layers-event-id").unwrap().to_owned())
        .collect();
    let recorded: Vec<_> = expected
        .iter()
        .map(|d| d["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(event_ids, recorded, "in the order recorded");
    let types: Vec<_> = received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "organization.updated",
            "organization.updated",
            "organization.suspended",
            "organization.updated",
            "credits.allocated",
            "organization.resumed",
        ]
    );
    for request in &received {
        verify_signature(request, &secret);
    }
    assert_eq!(
        received[3].json()["data"]["object"]["name"],
        "Renamed while suspended"
    );
    deliveries_when(&app, &child, &endpoint, |d| {
        d.iter().all(|d| d["status"] == "succeeded")
    })
    .await;
}
