//! Contract cases for trails, the audit log and webhooks (API.md §7, §9): a trail is written with
//! its effect and only then; audit events list newest first with their filters; kill-switch
//! refusals are recorded once per window; webhook events fan out to exactly the endpoints that
//! want them, as deliveries held while the owner is suspended and canceled by its archive; an
//! attempt is recorded with its job and the endpoint's failure count in one change.

use std::sync::Arc;

use domain::audit::{Actor, AuditEvent, AuditEventId, AuditEventType, AuditFilter};
use domain::jobs::{Lease, JOB_LEASE};
use domain::organization::Organization;
use domain::ports::{Allocation, Archive, EndpointInsert, Write};
use domain::trail::Trail;
use domain::webhooks::{
    AttemptRecord, DeliveryId, DeliveryStatus, EndpointId, EndpointScope, EndpointStatus, Event,
    EventId, EventSelection, EventType, SigningSecret, WebhookEndpoint, WebhookUrl,
    AUTO_PAUSE_AFTER, DELIVER,
};
use domain::{OrganizationId, Timestamp};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::*;
use crate::reservations::funded_child;
use crate::Stores;

fn random10() -> [u8; 10] {
    let mut random = [0u8; 10];
    random.copy_from_slice(&Uuid::new_v4().as_bytes()[..10]);
    random
}

pub(crate) fn audit(org: OrganizationId, kind: AuditEventType, when: Timestamp) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::new(when, random10()),
        event_type: kind,
        occurred_at: when,
        request_id: Some("req_01HXZ9G7KMV2QX8Y1S5RJW3B7T".to_owned()),
        organization_id: org,
        actor: Actor::Operator,
        data: format!("{{\"kind\":\"{kind}\"}}"),
    }
}

fn event(org: OrganizationId, kind: EventType, when: Timestamp) -> Event {
    let id = EventId::new(when, random10());
    Event {
        id,
        event_type: kind,
        organization_id: org,
        created_at: when,
        body: format!("{{\"id\":\"{id}\",\"type\":\"{kind}\"}}"),
        target: None,
        replay_of: None,
    }
}

pub(crate) fn endpoint(
    owner: &Organization,
    scope: EndpointScope,
    events: EventSelection,
) -> WebhookEndpoint {
    WebhookEndpoint {
        id: EndpointId::from_uuid(Uuid::new_v4()),
        organization_id: owner.id,
        url: WebhookUrl::parse("https://hooks.example.com/in?x=1").unwrap(),
        events,
        scope,
        status: EndpointStatus::Enabled,
        description: Some("Ünïcode hooks ☕".to_owned()),
        secret: SigningSecret::from_random([7; 32]),
        consecutive_failures: 0,
        created_at: at(3),
        updated_at: at(3),
    }
}

fn only(kinds: &[EventType]) -> EventSelection {
    EventSelection::Only(kinds.to_vec())
}

async fn add(s: &Stores, endpoint: &WebhookEndpoint) {
    let inserted = s
        .webhooks
        .insert_endpoint(endpoint, &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(inserted, EndpointInsert::Inserted);
}

async fn family(s: &Stores) -> (Organization, Organization) {
    family_at(s, at(1)).await
}

async fn audit_of(s: &Stores, org: OrganizationId) -> Vec<AuditEvent> {
    s.audit
        .list(org, AuditFilter::default(), first_page(1000))
        .await
        .unwrap()
}

async fn delivery_statuses(s: &Stores, endpoint: EndpointId) -> Vec<(EventType, &'static str)> {
    let mut rows = s
        .webhooks
        .list_deliveries(endpoint, first_page(1000))
        .await
        .unwrap();
    rows.reverse();
    rows.iter()
        .map(|d| (d.event_type, d.shown_status()))
        .collect()
}

async fn claim_deliveries(s: &Stores, now: Timestamp) -> Vec<Lease> {
    s.jobs
        .claim(vec![DELIVER.to_owned()], now, now.plus(JOB_LEASE), 100)
        .await
        .unwrap()
}

pub async fn a_trail_is_written_with_its_effect_and_only_then(s: &Stores) {
    let (parent, child) = family(s).await;
    // Applied: the organization's update writes its audit event.
    let next = suspended(&child, at(10));
    let trail = Trail::none().with_audit(audit(
        child.id,
        AuditEventType::OrganizationSuspended,
        at(10),
    ));
    let write = s
        .organizations
        .update(&next, child.revision, &trail, None)
        .await
        .unwrap();
    assert_eq!(write, Write::Applied);
    // Stale: nothing, the trail included.
    let stale =
        Trail::none().with_audit(audit(child.id, AuditEventType::OrganizationResumed, at(11)));
    let write = s
        .organizations
        .update(&child, child.revision, &stale, None)
        .await
        .unwrap();
    assert_eq!(write, Write::Stale);
    // A key revoked twice: one event.
    let key = key_of(&child, at(2));
    s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
    for when in [12, 13] {
        let trail =
            Trail::none().with_audit(audit(child.id, AuditEventType::ApiKeyRevoked, at(when)));
        s.api_keys
            .revoke(key.id, at(when), &trail, None)
            .await
            .unwrap();
    }
    // An allocation refused for want of credits: nothing.
    let entry = |org: OrganizationId, credits| domain::credits::LedgerEntry {
        id: domain::credits::LedgerEventId::new(at(14), random10()),
        organization_id: org,
        event_type: domain::credits::LedgerEventType::Allocation,
        credits,
        transfer_id: None,
        reservation_id: None,
        description: None,
        metadata: Default::default(),
        created_at: at(14),
    };
    let trail = Trail::none().with_audit(audit(child.id, AuditEventType::CreditsAllocated, at(14)));
    let refused = s
        .credits
        .allocate(entry(parent.id, -5), entry(child.id, 5), &trail, None)
        .await
        .unwrap();
    assert!(matches!(refused, Allocation::InsufficientFunds { .. }));

    let kinds: Vec<_> = audit_of(s, child.id)
        .await
        .iter()
        .map(|e| (e.event_type, e.occurred_at))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (AuditEventType::ApiKeyRevoked, at(12)),
            (AuditEventType::OrganizationSuspended, at(10)),
        ]
    );
    assert!(audit_of(s, parent.id).await.is_empty());
}

pub async fn the_audit_log_lists_newest_first_with_filters_and_pages(s: &Stores) {
    let (parent, child) = family(s).await;
    let kinds = [
        AuditEventType::OrganizationCreated,
        AuditEventType::ApiKeyCreated,
        AuditEventType::OrganizationSuspended,
        AuditEventType::ApiKeyCreated,
        AuditEventType::OrganizationResumed,
    ];
    let mut written = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let event = audit(child.id, kind, at(100 * (i as i64 + 1)));
        written.push(event.clone());
        s.webhooks
            .record(&Trail::none().with_audit(event), None)
            .await
            .unwrap();
    }
    s.webhooks
        .record(
            &Trail::none().with_audit(audit(parent.id, AuditEventType::ApiKeyCreated, at(150))),
            None,
        )
        .await
        .unwrap();
    let all = audit_of(s, child.id).await;
    assert_eq!(
        all,
        newest_first(&written, |e| (e.occurred_at, e.id.as_uuid()))
    );

    let keys_only = AuditFilter {
        event_type: Some(AuditEventType::ApiKeyCreated),
        ..AuditFilter::default()
    };
    let listed = s
        .audit
        .list(child.id, keys_only, first_page(10))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|e| e.occurred_at).collect::<Vec<_>>(),
        vec![at(400), at(200)]
    );
    // since and until are inclusive.
    let window = AuditFilter {
        event_type: None,
        since: Some(at(200)),
        until: Some(at(400)),
    };
    let listed = s
        .audit
        .list(child.id, window, first_page(10))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    // Pages follow one another strictly.
    let first = s
        .audit
        .list(child.id, AuditFilter::default(), first_page(2))
        .await
        .unwrap();
    let last = first.last().unwrap();
    let second = s
        .audit
        .list(
            child.id,
            AuditFilter::default(),
            page_after(last.occurred_at, last.id.as_uuid(), 10),
        )
        .await
        .unwrap();
    assert_eq!([first, second].concat(), all);
}

fn refusal(key: &domain::api_key::ApiKey, when: Timestamp) -> AuditEvent {
    AuditEvent {
        actor: Actor::ApiKey {
            api_key_id: key.id,
            organization_id: key.organization_id,
        },
        ..audit(key.organization_id, AuditEventType::KillSwitchRefused, when)
    }
}

pub async fn kill_switch_refusals_are_recorded_once_per_window(s: &Stores) {
    let (_, child) = family(s).await;
    let key = key_of(&child, at(2));
    let other = key_of(&child, at(2));
    let minute = 60_000_000;
    let write = |key, when: i64| {
        let event = refusal(key, at(when));
        async move {
            s.audit
                .record_refusal(&event, at(when - minute))
                .await
                .unwrap()
        }
    };
    assert!(write(&key, minute).await);
    assert!(!write(&key, minute + 1_000_000).await);
    assert!(
        write(&other, minute + 2_000_000).await,
        "keys have windows of their own"
    );
    assert!(
        !write(&key, 2 * minute - 1).await,
        "a minute has not passed yet"
    );
    assert!(write(&key, 2 * minute).await, "a minute after the last one");
    let refusals = audit_of(s, child.id).await;
    assert_eq!(refusals.len(), 3);
    assert!(refusals
        .iter()
        .all(|e| e.event_type == AuditEventType::KillSwitchRefused));
}

pub async fn concurrent_refusals_of_one_key_are_recorded_once(s: &Stores) {
    let (_, child) = family(s).await;
    let key = key_of(&child, at(2));
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (audit, barrier) = (s.audit.clone(), barrier.clone());
        let event = refusal(&key, at(60_000_000 + i));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            audit.record_refusal(&event, at(0)).await.unwrap()
        }));
    }
    let mut written = Vec::new();
    for task in tasks {
        written.push(task.await.unwrap());
    }
    assert_eq!(written.iter().filter(|w| **w).count(), 1, "{written:?}");
    assert_eq!(audit_of(s, child.id).await.len(), 1);
}

pub async fn events_fan_out_to_exactly_the_endpoints_that_want_them(s: &Stores) {
    let (parent, child) = family(s).await;
    let sibling = child_of(&parent, at(2));
    s.organizations
        .insert(&sibling, &Trail::none(), None)
        .await
        .unwrap();
    let child_all = endpoint(&child, EndpointScope::Own, EventSelection::All);
    let child_keys = endpoint(
        &child,
        EndpointScope::Own,
        only(&[EventType::ApiKeyCreated]),
    );
    let child_disabled = WebhookEndpoint {
        status: EndpointStatus::Disabled,
        ..endpoint(&child, EndpointScope::Own, EventSelection::All)
    };
    let firehose = endpoint(
        &parent,
        EndpointScope::AllChildren,
        only(&[EventType::OrganizationSuspended]),
    );
    let parent_own = endpoint(&parent, EndpointScope::Own, EventSelection::All);
    let sibling_all = endpoint(&sibling, EndpointScope::Own, EventSelection::All);
    for e in [
        &child_all,
        &child_keys,
        &child_disabled,
        &firehose,
        &parent_own,
        &sibling_all,
    ] {
        add(s, e).await;
    }
    let suspended_event = event(child.id, EventType::OrganizationSuspended, at(10));
    let trail = Trail::none().with_event(suspended_event.clone());
    s.webhooks.record(&trail, None).await.unwrap();

    let wanted = vec![(EventType::OrganizationSuspended, "pending")];
    assert_eq!(delivery_statuses(s, child_all.id).await, wanted);
    assert_eq!(delivery_statuses(s, firehose.id).await, wanted);
    for unwanted in [&child_keys, &child_disabled, &parent_own, &sibling_all] {
        assert_eq!(delivery_statuses(s, unwanted.id).await, vec![]);
    }
    assert_eq!(
        s.webhooks.event_body(suspended_event.id).await.unwrap(),
        Some(suspended_event.body.clone())
    );
    // Each delivery is a job bound to its endpoint's owner.
    let mut owners: Vec<_> = claim_deliveries(s, at(10))
        .await
        .into_iter()
        .map(|l| l.job.organization_id)
        .collect();
    owners.sort();
    let mut expected = vec![Some(child.id), Some(parent.id)];
    expected.sort();
    assert_eq!(owners, expected);
}

pub async fn a_targeted_event_reaches_its_one_endpoint(s: &Stores) {
    let (parent, _) = family(s).await;
    let target = endpoint(
        &parent,
        EndpointScope::Own,
        only(&[EventType::ApiKeyCreated]),
    );
    let bystander = endpoint(&parent, EndpointScope::Own, EventSelection::All);
    add(s, &target).await;
    add(s, &bystander).await;
    let delivery_id = DeliveryId::from_uuid(Uuid::new_v4());
    let ping = Event {
        target: Some((target.id, delivery_id)),
        ..event(parent.id, EventType::TestPing, at(10))
    };
    s.webhooks
        .record(&Trail::none().with_event(ping.clone()), None)
        .await
        .unwrap();
    let delivery = s
        .webhooks
        .find_delivery(delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivery.endpoint_id, delivery.event_id, delivery.status),
        (target.id, ping.id, DeliveryStatus::Pending)
    );
    assert_eq!(delivery_statuses(s, bystander.id).await, vec![]);
    let attempt = s
        .webhooks
        .pending_attempt(delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((attempt.endpoint, attempt.body), (target, ping.body));
}

pub async fn deliveries_are_held_while_the_owner_is_suspended(s: &Stores) {
    let (_, child) = family(s).await;
    let hooks = endpoint(&child, EndpointScope::Own, EventSelection::All);
    add(s, &hooks).await;
    let next = suspended(&child, at(10));
    let trail = Trail::none().with_event(event(child.id, EventType::OrganizationSuspended, at(10)));
    s.organizations
        .update(&next, child.revision, &trail, None)
        .await
        .unwrap();
    assert_eq!(
        delivery_statuses(s, hooks.id).await,
        vec![(EventType::OrganizationSuspended, "held")]
    );
    assert!(
        claim_deliveries(s, later()).await.is_empty(),
        "held, not claimed"
    );
    let resumed = domain::organization::Organization {
        status: domain::organization::OrganizationStatus::Active,
        updated_at: at(20),
        revision: next.revision.next(),
        ..next.clone()
    };
    let trail = Trail::none().with_event(event(child.id, EventType::OrganizationResumed, at(20)));
    s.organizations
        .update(&resumed, next.revision, &trail, None)
        .await
        .unwrap();
    assert_eq!(
        delivery_statuses(s, hooks.id).await,
        vec![
            (EventType::OrganizationSuspended, "pending"),
            (EventType::OrganizationResumed, "pending")
        ]
    );
    // One at a time, in the order they were recorded: the endpoint's queue.
    for expected in [at(10), at(20)] {
        let claimed = claim_deliveries(s, later()).await;
        let due: Vec<_> = claimed.iter().map(|l| l.job.run_at).collect();
        assert_eq!(due, vec![expected]);
        assert!(
            claim_deliveries(s, later()).await.is_empty(),
            "one at a time"
        );
        s.jobs.complete(&claimed[0]).await.unwrap();
    }
}

pub async fn archive_cancels_the_owners_deliveries_and_tells_the_parent(s: &Stores) {
    let (parent, child) = funded_child(s, 100).await;
    let own = endpoint(&child, EndpointScope::Own, EventSelection::All);
    let firehose = endpoint(&parent, EndpointScope::AllChildren, EventSelection::All);
    add(s, &own).await;
    add(s, &firehose).await;
    s.webhooks
        .record(
            &Trail::none().with_event(event(child.id, EventType::OrganizationUpdated, at(5))),
            None,
        )
        .await
        .unwrap();
    let child_id = child.id;
    let trail = Trail::none()
        .with_audit(audit(
            child.id,
            AuditEventType::OrganizationArchived,
            at(10),
        ))
        .with_event(event(child.id, EventType::OrganizationArchived, at(10)))
        .reclaiming(Arc::new(move |credits| {
            assert_eq!(credits, 100, "the trail learns what was swept");
            Trail::none()
                .with_audit(audit(child_id, AuditEventType::CreditsReclaimed, at(10)))
                .with_event(event(child_id, EventType::CreditsReclaimed, at(10)))
        }));
    let archived_child = archived(&child, at(10));
    let outcome = s
        .organizations
        .archive(&archived_child, child.revision, reclaim(), &trail, None)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Archive::Applied {
            reclaimed_credits: 100,
            ..
        }
    ));
    assert_eq!(
        delivery_statuses(s, own.id).await,
        vec![(EventType::OrganizationUpdated, "canceled")],
        "nothing more goes to an archived organization's endpoints"
    );
    let own_now = s.webhooks.find_endpoint(own.id).await.unwrap().unwrap();
    assert_eq!(
        (own_now.status, own_now.updated_at),
        (EndpointStatus::Disabled, at(10)),
        "archive disables the organization's endpoints (API.md §4.9)"
    );
    let mut told: Vec<_> = delivery_statuses(s, firehose.id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    told.sort();
    assert_eq!(
        told,
        vec![
            EventType::OrganizationUpdated,
            EventType::OrganizationArchived,
            EventType::CreditsReclaimed
        ]
    );
    let kinds: Vec<_> = audit_of(s, child.id)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&AuditEventType::CreditsReclaimed));
    assert!(claim_deliveries(s, later())
        .await
        .iter()
        .all(|l| l.job.organization_id == Some(parent.id)));
    // A closed organization gets no new endpoint.
    let refused = s
        .webhooks
        .insert_endpoint(
            &endpoint(&archived_child, EndpointScope::Own, EventSelection::All),
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(refused, EndpointInsert::OrganizationClosed);
}

fn failed_attempt(when: Timestamp, next: Option<Timestamp>) -> AttemptRecord {
    AttemptRecord {
        at: when,
        status: if next.is_some() {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Abandoned
        },
        next_attempt_at: next,
        response_status: Some(500),
        error: Some("the endpoint answered 500".to_owned()),
        attempted: true,
    }
}

pub async fn an_attempt_is_recorded_with_its_job_and_the_failure_count(s: &Stores) {
    let (parent, _) = family(s).await;
    let hooks = endpoint(&parent, EndpointScope::Own, EventSelection::All);
    add(s, &hooks).await;
    s.webhooks
        .record(
            &Trail::none().with_event(event(parent.id, EventType::OrganizationUpdated, at(10))),
            None,
        )
        .await
        .unwrap();
    let lease = claim_deliveries(s, at(10)).await.pop().unwrap();
    let delivery_id = DeliveryId::parse(&lease.job.payload).unwrap();
    // A failure: retried at its time, not before.
    let recorded = s
        .webhooks
        .finish_attempt(&lease, &failed_attempt(at(11), Some(at(1_000))))
        .await
        .unwrap();
    assert!(recorded);
    let delivery = s
        .webhooks
        .find_delivery(delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            delivery.status,
            delivery.attempts,
            delivery.last_response_status,
            delivery.last_attempt_at,
            delivery.next_attempt_at
        ),
        (
            DeliveryStatus::Pending,
            1,
            Some(500),
            Some(at(11)),
            Some(at(1_000))
        )
    );
    assert_eq!(
        delivery.last_error.as_deref(),
        Some("the endpoint answered 500")
    );
    let endpoint_now = s.webhooks.find_endpoint(hooks.id).await.unwrap().unwrap();
    assert_eq!(endpoint_now.consecutive_failures, 1);
    assert!(claim_deliveries(s, at(999)).await.is_empty());
    // An old lease records nothing.
    assert!(!s
        .webhooks
        .finish_attempt(&lease, &failed_attempt(at(12), None))
        .await
        .unwrap());
    // Success: the job is done and the count is reset.
    let lease = claim_deliveries(s, at(1_000)).await.pop().unwrap();
    let success = AttemptRecord {
        at: at(1_001),
        status: DeliveryStatus::Succeeded,
        next_attempt_at: None,
        response_status: Some(200),
        error: None,
        attempted: true,
    };
    assert!(s.webhooks.finish_attempt(&lease, &success).await.unwrap());
    let delivery = s
        .webhooks
        .find_delivery(delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivery.status, delivery.attempts),
        (DeliveryStatus::Succeeded, 2)
    );
    assert_eq!(
        s.webhooks
            .find_endpoint(hooks.id)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        0
    );
    assert!(claim_deliveries(s, later()).await.is_empty());
}

/// A delivery's retry that fell due while its owner was suspended is claimed after the resume as
/// held ([`Lease::was_held`]); recording its attempt schedules it again, so the next retry's
/// lease is not held — each hold moves the schedule once (API.md §7).
pub async fn a_delivery_retry_scheduled_again_is_no_longer_held(s: &Stores) {
    let (_, child) = family(s).await;
    let hooks = endpoint(&child, EndpointScope::Own, EventSelection::All);
    add(s, &hooks).await;
    let updated = event(child.id, EventType::OrganizationUpdated, at(10));
    s.webhooks
        .record(&Trail::none().with_event(updated), None)
        .await
        .unwrap();
    let first = claim_deliveries(s, at(10)).await.pop().unwrap();
    assert!(!first.was_held);
    let retry_at = |n: i64| failed_attempt(at(n + 1), Some(at(n + 100)));
    assert!(s
        .webhooks
        .finish_attempt(&first, &retry_at(10))
        .await
        .unwrap());

    let paused = suspended(&child, at(50));
    let write = |to: Organization, from: Organization| async move {
        let none = Trail::none();
        let written = s.organizations.update(&to, from.revision, &none, None);
        assert_eq!(written.await.unwrap(), Write::Applied);
    };
    write(paused.clone(), child.clone()).await;
    assert!(claim_deliveries(s, at(200)).await.is_empty(), "held");
    write(resumed(&paused, at(250)), paused).await;
    let second = claim_deliveries(s, at(300)).await.pop().unwrap();
    assert!(second.was_held, "due at 110, held until 250");
    assert!(s
        .webhooks
        .finish_attempt(&second, &retry_at(300))
        .await
        .unwrap());
    let third = claim_deliveries(s, at(400)).await.pop().unwrap();
    assert!(!third.was_held, "scheduled again after the hold");
}

pub async fn failures_in_a_row_pause_the_endpoint(s: &Stores) {
    let (parent, _) = family(s).await;
    let hooks = endpoint(&parent, EndpointScope::Own, EventSelection::All);
    add(s, &hooks).await;
    for i in 0..AUTO_PAUSE_AFTER {
        let when = at(100 * i64::from(i + 1));
        s.webhooks
            .record(
                &Trail::none().with_event(event(parent.id, EventType::OrganizationUpdated, when)),
                None,
            )
            .await
            .unwrap();
        let lease = claim_deliveries(s, when).await.pop().unwrap();
        let record = AttemptRecord {
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
            response_status: Some(400),
            ..failed_attempt(when, None)
        };
        s.webhooks.finish_attempt(&lease, &record).await.unwrap();
        let status = s
            .webhooks
            .find_endpoint(hooks.id)
            .await
            .unwrap()
            .unwrap()
            .status;
        let expected = if i + 1 < AUTO_PAUSE_AFTER {
            EndpointStatus::Enabled
        } else {
            EndpointStatus::AutoPaused
        };
        assert_eq!(status, expected, "after {} failures", i + 1);
    }
}

pub async fn endpoints_round_trip_update_and_delete(s: &Stores) {
    let (parent, child) = family(s).await;
    let hooks = endpoint(
        &parent,
        EndpointScope::AllChildren,
        only(&[EventType::OrganizationSuspended, EventType::ApiKeyRevoked]),
    );
    add(s, &hooks).await;
    assert_eq!(
        s.webhooks.find_endpoint(hooks.id).await.unwrap(),
        Some(hooks.clone())
    );
    let mut listed = Vec::new();
    for i in 0..3 {
        let e = WebhookEndpoint {
            created_at: at(10 + i),
            ..endpoint(&child, EndpointScope::Own, EventSelection::All)
        };
        add(s, &e).await;
        listed.push(e);
    }
    let page = s
        .webhooks
        .list_endpoints(child.id, first_page(2))
        .await
        .unwrap();
    assert_eq!(
        page,
        newest_first(&listed, |e| (e.created_at, e.id.as_uuid()))[..2].to_vec()
    );
    let changed = WebhookEndpoint {
        url: WebhookUrl::parse("https://other.example.com/hooks").unwrap(),
        events: EventSelection::All,
        description: None,
        status: EndpointStatus::Disabled,
        updated_at: at(20),
        ..hooks.clone()
    };
    // Written only over the status it was read with: a pause meanwhile is not undone.
    let paused_meanwhile = WebhookEndpoint {
        description: Some("patched".to_owned()),
        ..hooks.clone()
    };
    assert!(!s
        .webhooks
        .update_endpoint(
            &paused_meanwhile,
            EndpointStatus::AutoPaused,
            &Trail::none(),
            None
        )
        .await
        .unwrap());
    assert_eq!(
        s.webhooks.find_endpoint(hooks.id).await.unwrap(),
        Some(hooks.clone())
    );
    assert!(s
        .webhooks
        .update_endpoint(&changed, EndpointStatus::Enabled, &Trail::none(), None)
        .await
        .unwrap());
    assert_eq!(
        s.webhooks.find_endpoint(hooks.id).await.unwrap(),
        Some(changed.clone())
    );
    // Delete: pending deliveries are canceled and are no longer claimed.
    let target = listed[0].clone();
    s.webhooks
        .record(
            &Trail::none().with_event(event(child.id, EventType::OrganizationUpdated, at(30))),
            None,
        )
        .await
        .unwrap();
    let trail = Trail::none().with_audit(audit(
        child.id,
        AuditEventType::WebhookEndpointDeleted,
        at(31),
    ));
    assert!(s
        .webhooks
        .delete_endpoint(target.id, &trail, None)
        .await
        .unwrap());
    assert!(!s
        .webhooks
        .delete_endpoint(target.id, &Trail::none(), None)
        .await
        .unwrap());
    assert_eq!(s.webhooks.find_endpoint(target.id).await.unwrap(), None);
    assert!(!s
        .webhooks
        .update_endpoint(&target, EndpointStatus::Enabled, &Trail::none(), None)
        .await
        .unwrap());
    let claimed = claim_deliveries(s, later()).await;
    assert_eq!(claimed.len(), 2, "the two other endpoints of the child");
    assert!(audit_of(s, child.id)
        .await
        .iter()
        .any(|e| e.event_type == AuditEventType::WebhookEndpointDeleted));
}
