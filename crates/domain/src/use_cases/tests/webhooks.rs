use futures_executor::block_on;
use uuid::Uuid;

use crate::api_key::Scope;
use crate::jobs::{Job, JobId, Lease};
use crate::organization::OrganizationStatus;
use crate::ports::SendOutcome;
use crate::use_cases::test_support::*;
use crate::use_cases::NewEndpoint;
use crate::webhooks::{
    AttemptRecord, Delivery, DeliveryId, DeliveryStatus, EndpointId, EndpointScope, EndpointStatus,
    EventId, EventSelection, EventType, PendingAttempt, SigningSecret, WebhookEndpoint, WebhookUrl,
    DELIVER,
};
use crate::DomainError;

fn endpoint(status: EndpointStatus) -> WebhookEndpoint {
    let owner = org(None, OrganizationStatus::Active);
    WebhookEndpoint {
        id: EndpointId::from_uuid(Uuid::new_v4()),
        organization_id: owner.id,
        url: WebhookUrl::parse("https://hooks.example.com/in").unwrap(),
        events: EventSelection::All,
        scope: EndpointScope::Own,
        status,
        description: None,
        secret: SigningSecret::from_random([9; 32]),
        consecutive_failures: 0,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn delivery(endpoint: &WebhookEndpoint, attempts: u32) -> Delivery {
    Delivery {
        id: DeliveryId::from_uuid(Uuid::new_v4()),
        endpoint_id: endpoint.id,
        event_id: EventId::new(at(0), [1; 10]),
        event_type: EventType::OrganizationSuspended,
        status: DeliveryStatus::Pending,
        attempts,
        last_error: None,
        last_response_status: None,
        last_attempt_at: None,
        next_attempt_at: Some(at(0)),
        created_at: at(0),
        held: false,
    }
}

/// One due delivery, answered by the receiver with `outcome`; returns what was recorded.
fn attempt(
    status: EndpointStatus,
    attempts: u32,
    outcome: Option<SendOutcome>,
) -> (AttemptRecord, Vec<(&'static str, String)>) {
    attempt_due(status, attempts, outcome, at(0), false)
}

/// [`attempt`] of a delivery whose job was due at `due` (the clock reads `at(NOW)`), and that
/// waited for a resume if `was_held`.
fn attempt_due(
    status: EndpointStatus,
    attempts: u32,
    outcome: Option<SendOutcome>,
    due: crate::Timestamp,
    was_held: bool,
) -> (AttemptRecord, Vec<(&'static str, String)>) {
    let endpoint = endpoint(status);
    let delivery = delivery(&endpoint, attempts);
    let lease = Lease {
        job: Job {
            id: JobId::from_uuid(delivery.id.as_uuid()),
            organization_id: Some(endpoint.organization_id),
            kind: DELIVER.to_owned(),
            payload: delivery.id.to_string(),
            run_at: due,
            attempts: 1,
            queue: Some(endpoint.id.to_string()),
        },
        token: Uuid::new_v4(),
        was_held,
    };
    let mut mocks = Mocks::new();
    let claimed = lease.clone();
    mocks
        .jobs
        .expect_claim()
        .withf(|kinds, _, _, _| kinds == &vec![DELIVER.to_owned()])
        .returning(move |_, _, _, _| Ok(vec![claimed.clone()]));
    let pending = PendingAttempt {
        delivery: delivery.clone(),
        endpoint,
        body: "{\"id\":\"evt_1\"}".to_owned(),
    };
    let id = delivery.id;
    mocks
        .webhooks
        .expect_pending_attempt()
        .withf(move |asked| *asked == id)
        .returning(move |_| Ok(Some(pending.clone())));
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sent.clone();
    if let Some(outcome) = outcome {
        mocks
            .sender
            .expect_send()
            .times(1)
            .returning(move |request| {
                seen.lock().unwrap().extend(request.headers);
                outcome.clone()
            });
    }
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = recorded.clone();
    mocks
        .webhooks
        .expect_finish_attempt()
        .times(1)
        .returning(move |_, record| {
            *keep.lock().unwrap() = Some(record.clone());
            Ok(true)
        });
    assert_eq!(
        block_on(mocks.control_plane().deliver_webhooks(10)).unwrap(),
        1
    );
    let record = recorded.lock().unwrap().clone().unwrap();
    let headers = sent.lock().unwrap().clone();
    (record, headers)
}

#[test]
fn a_2xx_is_a_success_and_the_request_is_signed() {
    let (record, headers) = attempt(
        EndpointStatus::Enabled,
        0,
        Some(SendOutcome::Answered { status: 204 }),
    );
    assert_eq!(record.status, DeliveryStatus::Succeeded);
    assert!(record.attempted);
    let names: Vec<_> = headers.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["X-Layers-Event-Id", "X-Layers-Signature", "Content-Type"]
    );
    assert!(headers[1].1.starts_with("t=") && headers[1].1.contains(",v1="));
}

#[test]
fn a_500_is_retried_30_seconds_later_and_a_400_is_not() {
    let (record, _) = attempt(
        EndpointStatus::Enabled,
        0,
        Some(SendOutcome::Answered { status: 500 }),
    );
    assert_eq!(record.status, DeliveryStatus::Pending);
    assert_eq!(
        record.next_attempt_at,
        Some(at(NOW).plus(time::Duration::seconds(30)))
    );
    assert_eq!(record.response_status, Some(500));

    let (record, _) = attempt(
        EndpointStatus::Enabled,
        0,
        Some(SendOutcome::Answered { status: 400 }),
    );
    assert_eq!(record.status, DeliveryStatus::Failed);
    assert_eq!(record.next_attempt_at, None);

    let (record, _) = attempt(
        EndpointStatus::Enabled,
        0,
        Some(SendOutcome::Answered { status: 429 }),
    );
    assert_eq!(record.status, DeliveryStatus::Pending);
}

/// API.md §7: retries are due at 30 s, 1 min, 5 min, … after the first try. A retry that starts
/// late (the clock reads 5 ms past its due time here) or takes long keeps the schedule: the next
/// is due one gap after this one was *due*, not after it ended.
#[test]
fn a_late_retry_keeps_the_schedule_anchored_on_the_first_try() {
    let first_try = at(NOW - 30_000_000 - 5_000);
    let due = first_try.plus(time::Duration::seconds(30));
    let (record, _) = attempt_due(
        EndpointStatus::Enabled,
        1,
        Some(SendOutcome::Answered { status: 503 }),
        due,
        false,
    );
    assert_eq!(record.status, DeliveryStatus::Pending);
    assert_eq!(
        record.next_attempt_at,
        Some(first_try.plus(time::Duration::minutes(1))),
        "the first try plus one minute, whenever the second started"
    );
}

/// API.md §7 "Time held does not use up retries": a retry that fell due while the owner was
/// suspended goes out after the resume, and the next waits its full gap from then.
#[test]
fn a_retry_held_past_its_time_moves_the_rest_of_the_schedule() {
    let due = at(0);
    let (record, _) = attempt_due(
        EndpointStatus::Enabled,
        2,
        Some(SendOutcome::NoAnswer {
            error: "connection refused".into(),
        }),
        due,
        true,
    );
    assert_eq!(
        record.next_attempt_at,
        Some(at(NOW).plus(time::Duration::minutes(4))),
        "5 min − 1 min after the resumed attempt started, not after it was due"
    );
}

#[test]
fn the_eighth_failed_attempt_abandons_the_delivery() {
    let (record, _) = attempt(
        EndpointStatus::Enabled,
        7,
        Some(SendOutcome::NoAnswer {
            error: "timed out".into(),
        }),
    );
    assert_eq!(record.status, DeliveryStatus::Abandoned);
    assert_eq!(record.error.as_deref(), Some("timed out"));
}

#[test]
fn a_paused_endpoint_gets_nothing_and_its_delivery_is_canceled_without_an_attempt() {
    let (record, headers) = attempt(EndpointStatus::AutoPaused, 3, None);
    assert_eq!(record.status, DeliveryStatus::Canceled);
    assert!(!record.attempted);
    assert!(headers.is_empty());
}

#[test]
fn the_firehose_needs_org_admin_and_urls_are_vetted_by_the_sender() {
    let principal = partner(&[Scope::WebhooksWrite]);
    let input = NewEndpoint {
        url: "https://hooks.example.com/in".into(),
        events: vec!["*".into()],
        description: None,
        scope: Some("all_children".into()),
    };
    let refused = block_on(Mocks::new().control_plane().create_webhook_endpoint(
        &principal,
        input.clone(),
        None,
    ));
    assert!(matches!(
        refused,
        Err(DomainError::ForbiddenScope {
            required: Scope::OrgAdmin
        })
    ));

    let mut mocks = Mocks::new();
    mocks
        .sender
        .expect_vet()
        .returning(|_| Err("resolves to a private address".into()));
    let own = NewEndpoint {
        scope: None,
        ..input
    };
    let Err(DomainError::Validation(fields)) = block_on(
        mocks
            .control_plane()
            .create_webhook_endpoint(&principal, own, None),
    ) else {
        panic!("expected a validation error");
    };
    assert_eq!(fields[0].field, "url");
}

/// One claimed delivery job, and what the store says of it.
fn claimed_with(pending: Option<PendingAttempt>) -> (Mocks, Lease) {
    let id = pending
        .as_ref()
        .map_or_else(|| DeliveryId::from_uuid(Uuid::new_v4()), |p| p.delivery.id);
    let lease = Lease {
        job: Job {
            id: JobId::from_uuid(id.as_uuid()),
            organization_id: None,
            kind: DELIVER.to_owned(),
            payload: id.to_string(),
            run_at: at(0),
            attempts: 1,
            queue: None,
        },
        token: Uuid::new_v4(),
        was_held: false,
    };
    let mut mocks = Mocks::new();
    let claimed = lease.clone();
    mocks
        .jobs
        .expect_claim()
        .returning(move |_, _, _, _| Ok(vec![claimed.clone()]));
    mocks
        .webhooks
        .expect_pending_attempt()
        .returning(move |_| Ok(pending.clone()));
    (mocks, lease)
}

#[test]
fn a_delivery_whose_owner_was_suspended_since_the_claim_is_put_back_not_sent() {
    let endpoint = endpoint(EndpointStatus::Enabled);
    let held = Delivery {
        held: true,
        ..delivery(&endpoint, 0)
    };
    let (mut mocks, lease) = claimed_with(Some(PendingAttempt {
        delivery: held,
        endpoint,
        body: "{}".into(),
    }));
    let due = lease.job.run_at;
    mocks
        .jobs
        .expect_retry()
        .withf(move |_, run_at| *run_at == due)
        .times(1)
        .returning(|_, _| Ok(()));
    // No expectation on the sender: sending would panic the mock.
    assert_eq!(
        block_on(mocks.control_plane().deliver_webhooks(1)).unwrap(),
        1
    );
}

#[test]
fn a_delivery_whose_endpoint_was_deleted_is_canceled_not_left_pending() {
    let (mut mocks, _) = claimed_with(None);
    mocks
        .webhooks
        .expect_finish_attempt()
        .withf(|_, record| record.status == DeliveryStatus::Canceled && !record.attempted)
        .times(1)
        .returning(|_, _| Ok(true));
    assert_eq!(
        block_on(mocks.control_plane().deliver_webhooks(1)).unwrap(),
        1
    );
}
