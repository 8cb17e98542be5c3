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
