use futures_executor::block_on;
use uuid::Uuid;

use crate::api_key::Scope;
use crate::credits::{Reservation, ReservationId, ReservationStatus};
use crate::use_cases::test_support::*;
use crate::DomainError;

fn held(principal: &crate::policy::Principal) -> Reservation {
    Reservation {
        id: ReservationId::from_uuid(Uuid::new_v4()),
        organization_id: principal.acting_organization().id,
        credits: 10,
        status: ReservationStatus::Held,
        description: None,
        expires_at: at(3_600_000_000),
        created_at: at(0),
    }
}

/// Reading a reservation takes `credits:read` or `credits:write` (API.md §6.4: the section is
/// `credits:write`'s); a key with neither is refused naming `credits:read`, the lesser.
#[test]
fn a_reservation_is_read_with_either_credits_scope() {
    for scopes in [
        vec![Scope::CreditsRead],
        vec![Scope::CreditsWrite],
        vec![Scope::AllData],
    ] {
        let principal = partner(&scopes);
        let reservation = held(&principal);
        let found = reservation.clone();
        let mut mocks = Mocks::new();
        mocks
            .credits
            .expect_find_reservation()
            .returning(move |_| Ok(Some(found.clone())));
        let read = block_on(
            mocks
                .control_plane()
                .get_reservation(&principal, reservation.id),
        );
        assert_eq!(read.ok(), Some(reservation), "{scopes:?}");
    }

    // Neither: refused before the store is asked (the mock expects nothing).
    let principal = partner(&[Scope::KeysRead, Scope::OrgAdmin]);
    let refused = block_on(
        Mocks::new()
            .control_plane()
            .get_reservation(&principal, held(&principal).id),
    );
    assert!(matches!(
        refused,
        Err(DomainError::ForbiddenScope {
            required: Scope::CreditsRead
        })
    ));
}

/// API.md §1.2, 422 before 404: a negative settle amount or an out-of-range config value is
/// refused before any store is asked (the mocks expect nothing, so a lookup would panic).
#[test]
fn malformed_amounts_are_refused_before_the_lookup() {
    let principal = partner(&[Scope::AllData, Scope::OrgAdmin]);
    let settle = block_on(Mocks::new().control_plane().settle_reservation(
        &principal,
        ReservationId::from_uuid(Uuid::new_v4()),
        -1,
    ));
    let Err(DomainError::Validation(fields)) = settle else {
        panic!("expected a validation error, got {settle:?}");
    };
    assert_eq!(fields[0].field, "credits");

    let patch = crate::credits::CreditConfigPatch {
        monthly_credit_cap: Some(Some(-1)),
        ..Default::default()
    };
    let config = block_on(Mocks::new().control_plane().update_credit_config(
        &principal,
        crate::OrganizationId::from_uuid(Uuid::new_v4()),
        patch,
    ));
    let Err(DomainError::Validation(fields)) = config else {
        panic!("expected a validation error, got {config:?}");
    };
    assert_eq!(fields[0].field, "monthlyCreditCap");
}

/// A child's key admitted an instant before its parent suspended it: the store refuses the
/// reservation, and the answer is the kill switch that key's next request gets anyway
/// (API.md §3), not the `409` a parent acting inside a suspended child gets (§2.3).
#[test]
fn a_reservation_refused_by_a_suspension_since_admission_is_the_kill_switch_for_its_own_key() {
    use crate::error::KillScope;
    use crate::organization::OrganizationStatus;
    use crate::ports::Reserve;

    let parent = org(None, OrganizationStatus::Active);
    let child = org(Some(parent.id), OrganizationStatus::Active);
    let (child_key, _) = key(&child, &[Scope::CreditsWrite]);
    let own_key = crate::policy::Principal {
        key: child_key,
        organization: child.clone(),
        acting: None,
        request_id: None,
    };
    let (parent_key, _) = key(&parent, &[Scope::AllData, Scope::OrgAdmin]);
    let parent_inside = crate::policy::Principal {
        key: parent_key,
        organization: parent.clone(),
        acting: Some(child.clone()),
        request_id: None,
    };
    let suspended_child = crate::organization::Organization {
        status: OrganizationStatus::Suspended { since: at(NOW - 1) },
        ..child.clone()
    };

    let reserve = |principal: &crate::policy::Principal| {
        let mut mocks = Mocks::new();
        // The authentication read, as it stands after the suspend.
        let credentials = crate::policy::Credentials {
            key: principal.key.clone(),
            organization: if principal.acting.is_some() {
                parent.clone()
            } else {
                suspended_child.clone()
            },
            parent: principal.acting.is_none().then(|| parent.clone()),
        };
        mocks
            .api_keys
            .expect_find_credentials()
            .returning(move |_| Ok(Some(credentials.clone())));
        mocks
            .credits
            .expect_reserve()
            .returning(|_, _, _, _, _| Ok(Reserve::Suspended));
        let (parent, suspended_child) = (parent.clone(), suspended_child.clone());
        mocks.organizations.expect_find().returning(move |id| {
            Ok([&parent, &suspended_child]
                .into_iter()
                .find(|o| o.id == id)
                .cloned())
        });
        let input = crate::use_cases::credits::NewReservation {
            credits: 2,
            description: None,
        };
        block_on(
            mocks
                .control_plane()
                .reserve_credits(principal, input, None),
        )
    };

    match reserve(&own_key) {
        Err(DomainError::KillSwitch(kill)) => {
            assert_eq!(kill.scope, KillScope::Organization);
            assert_eq!(kill.organization_id, child.id);
            assert_eq!(kill.api_key_id, own_key.key.id);
            assert_eq!(kill.suspended_at, at(NOW - 1));
        }
        other => panic!("expected the kill switch, got {other:?}"),
    }
    match reserve(&parent_inside) {
        Err(DomainError::Conflict { .. }) => {}
        other => panic!("expected 409 for the parent inside its suspended child, got {other:?}"),
    }
}
