use futures_executor::block_on;

use crate::api_key::{KeyStatus, MintedSecret, Scope};
use crate::organization::OrganizationStatus;
use crate::policy::Credentials;
use crate::use_cases::test_support::*;
use crate::use_cases::RequestContext;
use crate::DomainError;

/// A control plane whose store knows exactly one key, with its organization and parent.
fn with_credentials(credentials: Credentials) -> crate::use_cases::ControlPlane {
    let mut mocks = Mocks::new();
    mocks
        .audit
        .expect_record_refusal()
        .returning(|_, _| Ok(true));
    with_credentials_on(mocks, credentials)
}

fn with_credentials_on(
    mut mocks: Mocks,
    credentials: Credentials,
) -> crate::use_cases::ControlPlane {
    mocks
        .api_keys
        .expect_find_credentials()
        .returning(move |handle| {
            Ok((handle == &credentials.key.handle).then(|| credentials.clone()))
        });
    mocks.control_plane()
}

fn child_credentials(
    child_status: OrganizationStatus,
    parent_status: OrganizationStatus,
) -> (Credentials, MintedSecret) {
    let parent = org(None, parent_status);
    let child = org(Some(parent.id), child_status);
    let (key, secret) = key(&child, &[Scope::AllData]);
    (
        Credentials {
            key,
            organization: child,
            parent: Some(parent),
        },
        secret,
    )
}

#[test]
fn a_valid_key_of_an_active_organization_is_admitted() {
    let (credentials, secret) =
        child_credentials(OrganizationStatus::Active, OrganizationStatus::Active);
    let principal = block_on(
        with_credentials(credentials.clone())
            .authenticate(secret.reveal(), &RequestContext::default()),
    )
    .unwrap();
    assert_eq!(principal.key.id, credentials.key.id);
    assert_eq!(principal.organization.id, credentials.organization.id);
}

#[test]
fn every_bad_key_is_the_same_unauthenticated() {
    let (credentials, secret) =
        child_credentials(OrganizationStatus::Active, OrganizationStatus::Active);
    let good = secret.reveal().to_owned();
    let wrong_secret = format!("{}A", &good[..good.len() - 1]);
    let wrong_env = good.replacen("lp_live_", "lp_test_", 1);
    let unknown_handle = MintedSecret::new(crate::api_key::KeyEnv::Live, [9; 10], [4; 32])
        .reveal()
        .to_owned();
    let cp = with_credentials(credentials.clone());
    for bad in ["", "garbage", &wrong_secret, &wrong_env, &unknown_handle] {
        assert!(
            matches!(
                block_on(cp.authenticate(bad, &RequestContext::default())),
                Err(DomainError::Unauthenticated)
            ),
            "{bad}"
        );
    }
    let mut revoked = credentials;
    revoked.key.status = KeyStatus::Revoked { at: at(1) };
    assert!(matches!(
        block_on(with_credentials(revoked).authenticate(&good, &RequestContext::default())),
        Err(DomainError::Unauthenticated)
    ));
}

#[test]
fn the_kill_switch_refuses_keys_of_a_suspended_organization_or_parent() {
    let (credentials, secret) = child_credentials(
        OrganizationStatus::Suspended { since: at(7) },
        OrganizationStatus::Active,
    );
    let child_id = credentials.organization.id;
    let Err(DomainError::KillSwitch(kill)) = block_on(
        with_credentials(credentials).authenticate(secret.reveal(), &RequestContext::default()),
    ) else {
        panic!("expected the kill switch");
    };
    assert_eq!((kill.organization_id, kill.suspended_at), (child_id, at(7)));

    let (credentials, secret) = child_credentials(
        OrganizationStatus::Active,
        OrganizationStatus::Suspended { since: at(8) },
    );
    let parent_id = credentials.parent.as_ref().unwrap().id;
    let Err(DomainError::KillSwitch(kill)) = block_on(
        with_credentials(credentials).authenticate(secret.reveal(), &RequestContext::default()),
    ) else {
        panic!("expected the kill switch");
    };
    assert_eq!(kill.organization_id, parent_id);
}

#[test]
fn a_revoked_key_of_a_suspended_organization_is_unauthenticated_first() {
    let (mut credentials, secret) = child_credentials(
        OrganizationStatus::Suspended { since: at(7) },
        OrganizationStatus::Active,
    );
    credentials.key.status = KeyStatus::Revoked { at: at(8) };
    assert!(matches!(
        block_on(
            with_credentials(credentials).authenticate(secret.reveal(), &RequestContext::default())
        ),
        Err(DomainError::Unauthenticated)
    ));
}

#[test]
fn a_kill_switch_refusal_is_audited_once_per_key_per_minute_and_stands_if_the_log_fails() {
    let (credentials, secret) = child_credentials(
        OrganizationStatus::Suspended { since: at(7) },
        OrganizationStatus::Active,
    );
    let key_id = credentials.key.id;
    let child_id = credentials.organization.id;
    let mut mocks = Mocks::new();
    mocks
        .audit
        .expect_record_refusal()
        .withf(move |event, since| {
            event.event_type == crate::audit::AuditEventType::KillSwitchRefused
                && event.organization_id == child_id
                && event.request_id.as_deref() == Some("req_1")
                && event.actor
                    == crate::audit::Actor::ApiKey {
                        api_key_id: key_id,
                        organization_id: child_id,
                    }
                && *since == at(NOW).plus(-crate::audit::KILL_SWITCH_AUDIT_WINDOW)
        })
        .times(1)
        .returning(|_, _| {
            Err(crate::ports::StoreError::Unavailable(
                "the audit log is down".into(),
            ))
        });
    let request = RequestContext {
        request_id: Some("req_1".into()),
        method: "GET".into(),
        route: "/v1/whoami".into(),
    };
    let refused =
        block_on(with_credentials_on(mocks, credentials).authenticate(secret.reveal(), &request));
    assert!(matches!(refused, Err(DomainError::KillSwitch(_))));
}
