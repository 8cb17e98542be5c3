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
