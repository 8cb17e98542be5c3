//! Contract cases for reservations (API.md §6.4): held credits leave `available`, never more than
//! there is; nothing is reserved for a suspended or archived organization; settling spends,
//! releasing gives back, and what an archived child releases goes to its parent.

use domain::trail::Trail;
use std::sync::Arc;

use domain::credits::{
    CreditConfig, Finish, LedgerEntry, LedgerEventId, LedgerEventType, LedgerFilter, Reservation,
    ReservationId, ReservationStatus,
};
use domain::organization::Organization;
use domain::ports::{Archive, Reserve, Write};
use domain::OrganizationId;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::*;
use crate::Stores;

/// The month the cases' instants fall in, as far as the cap is concerned.
fn month() -> (domain::Timestamp, domain::Timestamp) {
    (at(0), later())
}

pub(crate) fn job_id() -> domain::jobs::JobId {
    domain::jobs::JobId::from_uuid(Uuid::new_v4())
}

fn event_id() -> LedgerEventId {
    let mut random = [0u8; 10];
    random.copy_from_slice(&Uuid::new_v4().as_bytes()[..10]);
    LedgerEventId::new(at(0), random)
}

fn reservation(org: OrganizationId, credits: u64, expires: i64) -> Reservation {
    Reservation {
        id: ReservationId::from_uuid(Uuid::new_v4()),
        organization_id: org,
        credits,
        status: ReservationStatus::Held,
        description: Some("generation".to_owned()),
        expires_at: at(expires),
        created_at: at(5),
    }
}

/// A parent and a child, the child funded with `credits` (granted to the parent, allocated).
pub(crate) async fn funded_child(s: &Stores, credits: i64) -> (Organization, Organization) {
    let (parent, child) = family_at(s, at(1)).await;
    let entry = |org: OrganizationId, kind, credits| LedgerEntry {
        id: event_id(),
        organization_id: org,
        event_type: kind,
        credits,
        transfer_id: None,
        reservation_id: None,
        description: None,
        metadata: Default::default(),
        created_at: at(2),
    };
    s.credits
        .grant(
            entry(parent.id, LedgerEventType::Grant, credits),
            &Trail::none(),
        )
        .await
        .unwrap();
    s.credits
        .allocate(
            entry(parent.id, LedgerEventType::Allocation, -credits),
            entry(child.id, LedgerEventType::Allocation, credits),
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    (parent, child)
}

async fn finish(s: &Stores, id: ReservationId, how: Finish, when: i64) -> Reservation {
    s.credits
        .finish_reservation(id, how, at(when), event_id(), reclaim(), &Trail::none())
        .await
        .unwrap()
        .unwrap()
}

async fn sum_of_ledger(s: &Stores, org: OrganizationId) -> i64 {
    let events = s
        .credits
        .ledger(org, LedgerFilter::default(), first_page(10_000))
        .await
        .unwrap();
    events.iter().map(|e| e.entry.credits).sum()
}

pub async fn reservations_hold_credits_and_never_more_than_available(s: &Stores) {
    let (_, child) = funded_child(s, 100).await;
    let held = reservation(child.id, 70, 1_000);
    assert_eq!(
        s.credits
            .reserve(held.clone(), job_id(), month(), &Trail::none(), None)
            .await
            .unwrap(),
        Reserve::Held
    );
    assert_eq!(
        s.credits.find_reservation(held.id).await.unwrap(),
        Some(held)
    );
    let wallet = s.credits.wallet(child.id).await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.reserved, wallet.available()),
        (100, 70, 30)
    );
    let too_much = reservation(child.id, 31, 1_000);
    assert_eq!(
        s.credits
            .reserve(too_much.clone(), job_id(), month(), &Trail::none(), None)
            .await
            .unwrap(),
        Reserve::InsufficientFunds { available: 30 }
    );
    assert_eq!(s.credits.find_reservation(too_much.id).await.unwrap(), None);
}

pub async fn reservations_are_refused_while_suspended_or_archived(s: &Stores) {
    let (parent, child) = funded_child(s, 100).await;
    let paused = suspended(&child, at(10));
    assert_eq!(
        s.organizations
            .update(&paused, child.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(
        s.credits
            .reserve(
                reservation(child.id, 1, 1_000),
                job_id(),
                month(),
                &Trail::none(),
                None
            )
            .await
            .unwrap(),
        Reserve::Suspended
    );
    // The parent suspended (the platform-level switch) holds its children too.
    let (other_parent, other_child) = funded_child(s, 100).await;
    let paused_parent = suspended(&other_parent, at(10));
    s.organizations
        .update(&paused_parent, other_parent.revision, &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(
        s.credits
            .reserve(
                reservation(other_child.id, 1, 1_000),
                job_id(),
                month(),
                &Trail::none(),
                None,
            )
            .await
            .unwrap(),
        Reserve::Suspended
    );
    let gone = archived(&paused, at(20));
    assert!(matches!(
        s.organizations
            .archive(&gone, paused.revision, reclaim(), &Trail::none(), None)
            .await
            .unwrap(),
        Archive::Applied { .. }
    ));
    assert_eq!(
        s.credits
            .reserve(
                reservation(child.id, 1, 1_000),
                job_id(),
                month(),
                &Trail::none(),
                None
            )
            .await
            .unwrap(),
        Reserve::Closed
    );
    assert_eq!(
        s.credits
            .reserve(
                reservation(organization_id(), 1, 1_000),
                job_id(),
                month(),
                &Trail::none(),
                None,
            )
            .await
            .unwrap(),
        Reserve::Closed
    );
    assert_eq!(s.credits.wallet(parent.id).await.unwrap().reserved, 0);
}

pub async fn settling_spends_and_releasing_gives_back_once(s: &Stores) {
    let (_, child) = funded_child(s, 100).await;
    let first = reservation(child.id, 40, 1_000);
    let second = reservation(child.id, 30, 1_000);
    s.credits
        .reserve(first.clone(), job_id(), month(), &Trail::none(), None)
        .await
        .unwrap();
    s.credits
        .reserve(second.clone(), job_id(), month(), &Trail::none(), None)
        .await
        .unwrap();
    let settled = finish(s, first.id, Finish::Settle { credits: 25 }, 50).await;
    assert_eq!(
        settled.status,
        ReservationStatus::Settled {
            at: at(50),
            credits: 25
        }
    );
    let released = finish(s, second.id, Finish::Release, 60).await;
    assert_eq!(released.status, ReservationStatus::Released { at: at(60) });
    // Finished ones are returned as they are, whatever is asked.
    assert_eq!(finish(s, first.id, Finish::Release, 70).await, settled);
    assert_eq!(
        finish(s, second.id, Finish::Settle { credits: 5 }, 70).await,
        released
    );
    let wallet = s.credits.wallet(child.id).await.unwrap();
    assert_eq!((wallet.balance, wallet.reserved), (75, 0));
    assert_eq!(sum_of_ledger(s, child.id).await, 75);
    let usage = s
        .credits
        .ledger(
            child.id,
            LedgerFilter {
                event_type: Some(LedgerEventType::Usage),
                ..Default::default()
            },
            first_page(10),
        )
        .await
        .unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].entry.credits, usage[0].balance_after), (-25, 75));
    assert_eq!(
        s.credits
            .usage_between(child.id, at(0), later())
            .await
            .unwrap(),
        25
    );
    // Settling nothing writes no usage event.
    let third = reservation(child.id, 10, 1_000);
    s.credits
        .reserve(third.clone(), job_id(), month(), &Trail::none(), None)
        .await
        .unwrap();
    finish(s, third.id, Finish::Settle { credits: 0 }, 80).await;
    assert_eq!(
        s.credits
            .usage_between(child.id, at(0), later())
            .await
            .unwrap(),
        25
    );
    assert_eq!(
        s.credits
            .finish_reservation(
                ReservationId::from_uuid(Uuid::new_v4()),
                Finish::Release,
                at(1),
                event_id(),
                reclaim(),
                &Trail::none(),
            )
            .await
            .unwrap(),
        None
    );
}

pub async fn what_an_archived_child_releases_goes_to_its_parent(s: &Stores) {
    let (parent, child) = funded_child(s, 100).await;
    let held = reservation(child.id, 60, 1_000);
    s.credits
        .reserve(held.clone(), job_id(), month(), &Trail::none(), None)
        .await
        .unwrap();
    let gone = archived(&child, at(20));
    let outcome = s
        .organizations
        .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Archive::Applied {
            revoked_keys: 0,
            reclaimed_credits: 40
        },
        "the reserved part stays"
    );
    assert_eq!(s.credits.wallet(parent.id).await.unwrap().balance, 40);
    finish(s, held.id, Finish::Settle { credits: 15 }, 30).await;
    let child_wallet = s.credits.wallet(child.id).await.unwrap();
    assert_eq!((child_wallet.balance, child_wallet.reserved), (0, 0));
    assert_eq!(
        s.credits.wallet(parent.id).await.unwrap().balance,
        85,
        "the released 45 went to the parent"
    );
    assert_eq!(sum_of_ledger(s, child.id).await, 0);
    assert_eq!(sum_of_ledger(s, parent.id).await, 85);
}

/// API.md §6.3 `reservationId`: the `usage` a settle writes names its reservation, and so do both
/// `reclaim` events of what an archived child's reservation released; every other event (grant,
/// allocation, the archive's own sweep) names none. Read back through the ledger listing.
pub async fn ledger_events_name_the_reservation_they_came_from(s: &Stores) {
    let (parent, child) = funded_child(s, 100).await;
    let settled = reservation(child.id, 40, 1_000);
    let held = reservation(child.id, 30, 1_000);
    for r in [&settled, &held] {
        s.credits
            .reserve(r.clone(), job_id(), month(), &Trail::none(), None)
            .await
            .unwrap();
    }
    finish(s, settled.id, Finish::Settle { credits: 25 }, 50).await;
    let gone = archived(&child, at(60));
    s.organizations
        .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
        .await
        .unwrap();
    finish(s, held.id, Finish::Settle { credits: 10 }, 70).await;

    // As a set: events of one instant are ordered by their (random) ids.
    let named = |org: OrganizationId| async move {
        let mut events: Vec<(&str, i64, Option<String>)> = s
            .credits
            .ledger(org, LedgerFilter::default(), first_page(100))
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                let entry = e.entry;
                let reservation = entry.reservation_id.map(|r| r.to_string());
                (entry.event_type.as_str(), entry.credits, reservation)
            })
            .collect();
        events.sort();
        events
    };
    let (first, second) = (Some(settled.id.to_string()), Some(held.id.to_string()));
    assert_eq!(
        named(child.id).await,
        [
            ("allocation", 100, None),
            // The archive's sweep of what was not reserved: no reservation's.
            ("reclaim", -45, None),
            ("reclaim", -20, second.clone()),
            ("usage", -25, first),
            ("usage", -10, second.clone()),
        ]
    );
    assert_eq!(
        named(parent.id).await,
        [
            ("allocation", -100, None),
            ("grant", 100, None),
            ("reclaim", 20, second),
            ("reclaim", 45, None),
        ]
    );
    // Every event of a reservation's end carries its description; the sweep's carry none.
    for org in [child.id, parent.id] {
        for event in s
            .credits
            .ledger(org, LedgerFilter::default(), first_page(100))
            .await
            .unwrap()
        {
            let entry = event.entry;
            let expected = entry.reservation_id.and(held.description.clone());
            if entry.event_type.as_str() == "reclaim" {
                assert_eq!(entry.description, expected, "{entry:?}");
            }
        }
    }
}

/// Twenty concurrent reservations of 60 against 1,000: exactly 16 are held, nothing overdraws.
pub async fn concurrent_reservations_never_overdraw(s: &Stores) {
    let (_, child) = funded_child(s, 1_000).await;
    let barrier = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (credits, barrier) = (s.credits.clone(), barrier.clone());
            let r = reservation(child.id, 60, 1_000);
            tokio::spawn(async move {
                barrier.wait().await;
                credits
                    .reserve(r, job_id(), month(), &Trail::none(), None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut held = 0;
    for task in tasks {
        if task.await.unwrap() == Reserve::Held {
            held += 1;
        }
    }
    assert_eq!(held, 16);
    let wallet = s.credits.wallet(child.id).await.unwrap();
    assert_eq!((wallet.reserved, wallet.available()), (960, 40));
}

/// A suspend racing a stream of reservations: once the suspend is written, no reservation is.
pub async fn a_suspend_racing_reservations_stops_them(s: &Stores) {
    for round in 0..5 {
        let (_, child) = funded_child(s, 1_000).await;
        let barrier = Arc::new(Barrier::new(11));
        let reserves: Vec<_> = (0..10)
            .map(|_| {
                let (credits, barrier) = (s.credits.clone(), barrier.clone());
                let r = reservation(child.id, 10, 1_000);
                tokio::spawn(async move {
                    barrier.wait().await;
                    (
                        r.id,
                        credits
                            .reserve(r, job_id(), month(), &Trail::none(), None)
                            .await
                            .unwrap(),
                    )
                })
            })
            .collect();
        let suspend = {
            let (organizations, barrier) = (s.organizations.clone(), barrier.clone());
            let (paused, expected) = (suspended(&child, at(100)), child.revision);
            tokio::spawn(async move {
                barrier.wait().await;
                organizations
                    .update(&paused, expected, &Trail::none(), None)
                    .await
                    .unwrap()
            })
        };
        assert_eq!(suspend.await.unwrap(), Write::Applied);
        // From here on, nothing is reserved for it.
        assert_eq!(
            s.credits
                .reserve(
                    reservation(child.id, 1, 1_000),
                    job_id(),
                    month(),
                    &Trail::none(),
                    None
                )
                .await
                .unwrap(),
            Reserve::Suspended,
            "round {round}"
        );
        let mut held = 0u64;
        for task in reserves {
            let (id, outcome) = task.await.unwrap();
            match outcome {
                Reserve::Held => {
                    held += 10;
                    assert!(s.credits.find_reservation(id).await.unwrap().is_some());
                }
                Reserve::Suspended => {
                    assert_eq!(s.credits.find_reservation(id).await.unwrap(), None)
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            s.credits.wallet(child.id).await.unwrap().reserved,
            held,
            "round {round}"
        );
    }
}

pub async fn the_monthly_cap_counts_what_was_spent_and_what_is_held(s: &Stores) {
    let (_, child) = funded_child(s, 1_000).await;
    let config = CreditConfig {
        monthly_credit_cap: Some(100),
        ..CreditConfig::default()
    };
    s.credits
        .set_credit_config(child.id, config, &Trail::none())
        .await
        .unwrap();
    assert_eq!(s.credits.credit_config(child.id).await.unwrap(), config);
    let first = reservation(child.id, 60, 1_000);
    s.credits
        .reserve(first.clone(), job_id(), month(), &Trail::none(), None)
        .await
        .unwrap();
    finish(s, first.id, Finish::Settle { credits: 50 }, 20).await;
    let held = reservation(child.id, 30, 1_000);
    assert_eq!(
        s.credits
            .reserve(held, job_id(), month(), &Trail::none(), None)
            .await
            .unwrap(),
        Reserve::Held
    );
    let over = reservation(child.id, 21, 1_000);
    assert_eq!(
        s.credits
            .reserve(over, job_id(), month(), &Trail::none(), None)
            .await
            .unwrap(),
        Reserve::MonthlyCap {
            cap: 100,
            committed: 80
        }
    );
    // Outside the month, what was spent does not count.
    let next_month = (later(), later().plus(time::Duration::days(30)));
    assert_eq!(
        s.credits
            .reserve(
                reservation(child.id, 21, 1_000),
                job_id(),
                next_month,
                &Trail::none(),
                None
            )
            .await
            .unwrap(),
        Reserve::Held
    );
    let off = CreditConfig::default();
    s.credits
        .set_credit_config(child.id, off, &Trail::none())
        .await
        .unwrap();
    assert_eq!(s.credits.credit_config(child.id).await.unwrap(), off);
    assert_eq!(
        s.credits.credit_config(organization_id()).await.unwrap(),
        off
    );
}

/// Allocations, reservations, settlements and releases racing an archive of the child: what the
/// parent got back plus what stays reserved equals what the child held; every ledger sums to its
/// balance; nothing is created or lost.
pub async fn an_archive_racing_reservations_and_allocations_conserves_credits(s: &Stores) {
    for round in 0..5 {
        let (parent, child) = funded_child(s, 500).await;
        // The parent keeps 500 more to allocate during the race.
        s.credits
            .grant(
                LedgerEntry {
                    id: event_id(),
                    organization_id: parent.id,
                    event_type: LedgerEventType::Grant,
                    credits: 500,
                    transfer_id: None,
                    reservation_id: None,
                    description: None,
                    metadata: Default::default(),
                    created_at: at(3),
                },
                &Trail::none(),
            )
            .await
            .unwrap();
        let settled_before = reservation(child.id, 100, 1_000);
        s.credits
            .reserve(
                settled_before.clone(),
                job_id(),
                month(),
                &Trail::none(),
                None,
            )
            .await
            .unwrap();
        let barrier = Arc::new(Barrier::new(13));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (credits, barrier) = (s.credits.clone(), barrier.clone());
            let r = reservation(child.id, 40, 1_000);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let held = credits
                    .reserve(r.clone(), job_id(), (at(0), later()), &Trail::none(), None)
                    .await
                    .unwrap()
                    == Reserve::Held;
                if held && i % 2 == 0 {
                    credits
                        .finish_reservation(
                            r.id,
                            Finish::Settle { credits: 15 },
                            at(200),
                            event_id(),
                            reclaim(),
                            &Trail::none(),
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for _ in 0..5 {
            let (credits, barrier) = (s.credits.clone(), barrier.clone());
            let (parent, child) = (parent.id, child.id);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let transfer = Some(domain::credits::TransferId::from_uuid(Uuid::new_v4()));
                let entry = |org, credits| LedgerEntry {
                    id: event_id(),
                    organization_id: org,
                    event_type: LedgerEventType::Allocation,
                    credits,
                    transfer_id: transfer,
                    reservation_id: None,
                    description: None,
                    metadata: Default::default(),
                    created_at: at(150),
                };
                credits
                    .allocate(entry(parent, -50), entry(child, 50), &Trail::none(), None)
                    .await
                    .unwrap();
            }));
        }
        {
            let (credits, barrier, id) = (s.credits.clone(), barrier.clone(), settled_before.id);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                credits
                    .finish_reservation(
                        id,
                        Finish::Settle { credits: 30 },
                        at(210),
                        event_id(),
                        reclaim(),
                        &Trail::none(),
                    )
                    .await
                    .unwrap();
            }));
        }
        let archive = {
            let (organizations, barrier) = (s.organizations.clone(), barrier.clone());
            let (gone, expected) = (archived(&child, at(180)), child.revision);
            tokio::spawn(async move {
                barrier.wait().await;
                organizations
                    .archive(&gone, expected, reclaim(), &Trail::none(), None)
                    .await
                    .unwrap()
            })
        };
        for task in tasks {
            task.await.unwrap();
        }
        let Archive::Applied { .. } = archive.await.unwrap() else {
            panic!("round {round}: the only archive was stale");
        };
        let (parent_wallet, child_wallet) = (
            s.credits.wallet(parent.id).await.unwrap(),
            s.credits.wallet(child.id).await.unwrap(),
        );
        assert_eq!(
            sum_of_ledger(s, parent.id).await,
            i64::try_from(parent_wallet.balance).unwrap(),
            "round {round}"
        );
        assert_eq!(
            sum_of_ledger(s, child.id).await,
            i64::try_from(child_wallet.balance).unwrap(),
            "round {round}"
        );
        // After the archive the child holds only what is still reserved.
        assert_eq!(
            child_wallet.balance, child_wallet.reserved,
            "round {round}: {child_wallet:?}"
        );
        let spent = s
            .credits
            .usage_between(child.id, at(0), later())
            .await
            .unwrap();
        assert_eq!(
            parent_wallet.balance + child_wallet.balance + spent,
            1_000,
            "round {round}: credits conserved"
        );
        // The expiry of what is still held survives the archive; expiring it sends the rest to
        // the parent.
        let kinds = vec![domain::jobs::EXPIRE_RESERVATION.to_owned()];
        let leases = s
            .jobs
            .claim(kinds, later(), later().plus(time::Duration::hours(1)), 100)
            .await
            .unwrap();
        for lease in leases {
            let id = ReservationId::parse(&lease.job.payload).unwrap();
            finish(s, id, Finish::Expire, 300).await;
            s.jobs.complete(&lease).await.unwrap();
        }
        let (parent_after, child_after) = (
            s.credits.wallet(parent.id).await.unwrap(),
            s.credits.wallet(child.id).await.unwrap(),
        );
        assert_eq!(
            (child_after.balance, child_after.reserved),
            (0, 0),
            "round {round}"
        );
        assert_eq!(parent_after.balance + spent, 1_000, "round {round}");
    }
}

/// After a resume, reservations are held again.
pub async fn reservations_resume_after_resume(s: &Stores) {
    let (_, child) = funded_child(s, 100).await;
    let paused = suspended(&child, at(10));
    s.organizations
        .update(&paused, child.revision, &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(
        s.credits
            .reserve(
                reservation(child.id, 1, 1_000),
                job_id(),
                month(),
                &Trail::none(),
                None
            )
            .await
            .unwrap(),
        Reserve::Suspended
    );
    let resumed = Organization {
        status: domain::organization::OrganizationStatus::Active,
        revision: paused.revision.next(),
        ..paused.clone()
    };
    s.organizations
        .update(&resumed, paused.revision, &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(
        s.credits
            .reserve(
                reservation(child.id, 1, 1_000),
                job_id(),
                month(),
                &Trail::none(),
                None
            )
            .await
            .unwrap(),
        Reserve::Held
    );
}
