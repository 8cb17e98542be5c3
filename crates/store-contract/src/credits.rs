//! Contract cases for wallets and the ledger (API.md §6): the sum of a wallet's ledger is its
//! balance, nothing overdraws, and credits are conserved across parent and children.

use domain::trail::Trail;
use std::sync::Arc;

use domain::credits::{
    LedgerEntry, LedgerEvent, LedgerEventId, LedgerEventType, LedgerFilter, TransferId, Wallet,
};
use domain::idempotency::{
    ClaimOutcome, Fingerprint, IdempotencyKey, IdempotencyScope, PendingCompletion, StoredResponse,
};
use domain::organization::Organization;
use domain::ports::{Allocation, Archive, StoreError};
use domain::{OrganizationId, Timestamp};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::*;
use crate::Stores;

fn event_id(at_: Timestamp) -> LedgerEventId {
    let mut random = [0u8; 10];
    random.copy_from_slice(&Uuid::new_v4().as_bytes()[..10]);
    LedgerEventId::new(at_, random)
}

fn entry(
    org: OrganizationId,
    kind: LedgerEventType,
    credits: i64,
    when: i64,
    transfer: Option<TransferId>,
) -> LedgerEntry {
    LedgerEntry {
        id: event_id(at(when)),
        organization_id: org,
        event_type: kind,
        credits,
        transfer_id: transfer,
        reservation_id: None,
        description: Some(format!("{kind} of {credits}")),
        metadata: metadata(&[("case", "contract")]),
        created_at: at(when),
    }
}

async fn family_with(s: &Stores, granted: i64) -> (Organization, Organization) {
    let (parent, child) = family_at(s, at(1)).await;
    if granted > 0 {
        s.credits
            .grant(
                entry(parent.id, LedgerEventType::Grant, granted, 2, None),
                &Trail::none(),
            )
            .await
            .unwrap();
    }
    (parent, child)
}

async fn allocate(
    s: &Stores,
    parent: &Organization,
    child: &Organization,
    credits: i64,
    when: i64,
) -> Allocation {
    let transfer = Some(TransferId::from_uuid(Uuid::new_v4()));
    s.credits
        .allocate(
            entry(
                parent.id,
                LedgerEventType::Allocation,
                -credits,
                when,
                transfer,
            ),
            entry(
                child.id,
                LedgerEventType::Allocation,
                credits,
                when,
                transfer,
            ),
            &Trail::none(),
            None,
        )
        .await
        .unwrap()
}

async fn full_ledger(s: &Stores, org: OrganizationId) -> Vec<LedgerEvent> {
    s.credits
        .ledger(org, LedgerFilter::default(), first_page(10_000))
        .await
        .unwrap()
}

/// The invariant: the sum of a wallet's ledger is its balance, and `reserved <= balance`.
async fn assert_consistent(s: &Stores, org: OrganizationId) -> Wallet {
    let wallet = s.credits.wallet(org).await.unwrap();
    let sum: i64 = full_ledger(s, org)
        .await
        .iter()
        .map(|e| e.entry.credits)
        .sum();
    assert_eq!(
        u64::try_from(sum).unwrap(),
        wallet.balance,
        "ledger sum vs balance of {org}"
    );
    assert!(wallet.reserved <= wallet.balance);
    wallet
}

pub async fn credits_an_unknown_wallet_is_empty(s: &Stores) {
    let id = organization_id();
    assert_eq!(s.credits.wallet(id).await.unwrap(), Wallet::empty(id));
    assert!(full_ledger(s, id).await.is_empty());
    assert_eq!(
        s.credits.usage_between(id, at(0), later()).await.unwrap(),
        0
    );
}

pub async fn credits_grant_adds_and_records_the_balance_left(s: &Stores) {
    let (parent, _) = family_with(s, 0).await;
    let first = s
        .credits
        .grant(
            entry(parent.id, LedgerEventType::Grant, 500, 10, None),
            &Trail::none(),
        )
        .await
        .unwrap();
    let second = s
        .credits
        .grant(
            entry(parent.id, LedgerEventType::Grant, 250, 11, None),
            &Trail::none(),
        )
        .await
        .unwrap();
    assert_eq!((first.balance_after, second.balance_after), (500, 750));
    let ledger = full_ledger(s, parent.id).await;
    assert_eq!(
        ledger,
        vec![second, first],
        "newest first, exactly as recorded"
    );
    assert_eq!(assert_consistent(s, parent.id).await.balance, 750);
}

pub async fn credits_allocation_moves_credits_between_both_ledgers(s: &Stores) {
    let (parent, child) = family_with(s, 1_000).await;
    let Allocation::Applied { child_wallet } = allocate(s, &parent, &child, 300, 20).await else {
        panic!("the allocation was refused");
    };
    let debit = full_ledger(s, parent.id).await[0].clone();
    let credit = full_ledger(s, child.id).await[0].clone();
    assert_eq!((debit.entry.credits, debit.balance_after), (-300, 700));
    assert_eq!((credit.entry.credits, credit.balance_after), (300, 300));
    assert_eq!(debit.entry.transfer_id, credit.entry.transfer_id);
    assert_eq!(
        child_wallet,
        Wallet {
            organization_id: child.id,
            balance: 300,
            reserved: 0
        }
    );
    assert_eq!(full_ledger(s, child.id).await, vec![credit]);
    assert_consistent(s, parent.id).await;
    assert_consistent(s, child.id).await;
}

pub async fn credits_allocation_beyond_the_available_balance_moves_nothing(s: &Stores) {
    let (parent, child) = family_with(s, 100).await;
    assert_eq!(
        allocate(s, &parent, &child, 101, 20).await,
        Allocation::InsufficientFunds { available: 100 }
    );
    assert_eq!(s.credits.wallet(parent.id).await.unwrap().balance, 100);
    assert!(full_ledger(s, child.id).await.is_empty());
    assert!(matches!(
        allocate(s, &parent, &child, 100, 21).await,
        Allocation::Applied { .. }
    ));
    assert_eq!(
        allocate(s, &parent, &child, 1, 22).await,
        Allocation::InsufficientFunds { available: 0 }
    );
}

pub async fn credits_allocation_to_an_archived_child_is_refused(s: &Stores) {
    let (parent, child) = family_with(s, 100).await;
    let gone = archived(&child, at(10));
    s.organizations
        .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(
        allocate(s, &parent, &child, 10, 20).await,
        Allocation::ChildClosed
    );
    assert_eq!(s.credits.wallet(parent.id).await.unwrap().balance, 100);
}

pub async fn credits_ledger_filters_and_pages(s: &Stores) {
    let (parent, child) = family_with(s, 1_000).await;
    for i in 0..5 {
        allocate(s, &parent, &child, 10 + i, 100 + i).await;
    }
    s.credits
        .grant(
            entry(parent.id, LedgerEventType::Grant, 7, 200, None),
            &Trail::none(),
        )
        .await
        .unwrap();
    let all = full_ledger(s, parent.id).await;
    assert_eq!(all.len(), 7);
    let only = |kind| LedgerFilter {
        event_type: Some(kind),
        ..LedgerFilter::default()
    };
    let grants = s
        .credits
        .ledger(parent.id, only(LedgerEventType::Grant), first_page(100))
        .await
        .unwrap();
    assert_eq!(grants.len(), 2);
    let window = LedgerFilter {
        since: Some(at(101)),
        until: Some(at(103)),
        ..LedgerFilter::default()
    };
    let inside = s
        .credits
        .ledger(parent.id, window, first_page(100))
        .await
        .unwrap();
    assert_eq!(
        inside
            .iter()
            .map(|e| e.entry.created_at)
            .collect::<Vec<_>>(),
        vec![at(103), at(102), at(101)],
        "inclusive bounds"
    );
    let first = s
        .credits
        .ledger(parent.id, LedgerFilter::default(), first_page(3))
        .await
        .unwrap();
    let last = &first[2].entry;
    let rest = s
        .credits
        .ledger(
            parent.id,
            LedgerFilter::default(),
            page_after(last.created_at, last.id.as_uuid(), 100),
        )
        .await
        .unwrap();
    let paged: Vec<_> = first.iter().chain(rest.iter()).cloned().collect();
    assert_eq!(paged, all);
}

pub async fn credits_archive_sweeps_the_unreserved_balance_to_the_parent(s: &Stores) {
    let (parent, child) = family_with(s, 1_000).await;
    allocate(s, &parent, &child, 400, 20).await;
    let gone = archived(&child, at(30));
    let sweep = reclaim();
    let outcome = s
        .organizations
        .archive(&gone, child.revision, sweep, &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Archive::Applied {
            revoked_keys: 0,
            reclaimed_credits: 400
        }
    );
    assert_eq!(assert_consistent(s, child.id).await.balance, 0);
    assert_eq!(assert_consistent(s, parent.id).await.balance, 1_000);
    let child_reclaim = &full_ledger(s, child.id).await[0];
    let parent_reclaim = &full_ledger(s, parent.id).await[0];
    assert_eq!(
        (child_reclaim.entry.event_type, child_reclaim.entry.credits),
        (LedgerEventType::Reclaim, -400)
    );
    assert_eq!(
        (
            parent_reclaim.entry.event_type,
            parent_reclaim.entry.credits
        ),
        (LedgerEventType::Reclaim, 400)
    );
    assert_eq!(child_reclaim.entry.id, sweep.child_event);
    assert_eq!(parent_reclaim.entry.transfer_id, Some(sweep.transfer_id));
    assert_eq!(child_reclaim.entry.created_at, at(30));
    // Nothing to sweep: no events at all.
    let (_, empty_child) = family_with(s, 0).await;
    let outcome = s
        .organizations
        .archive(
            &archived(&empty_child, at(40)),
            empty_child.revision,
            reclaim(),
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Archive::Applied {
            revoked_keys: 0,
            reclaimed_credits: 0
        }
    );
    assert!(full_ledger(s, empty_child.id).await.is_empty());
}

pub async fn credits_an_allocation_writes_its_idempotent_answer_with_the_effect(s: &Stores) {
    let (parent, child) = family_with(s, 100).await;
    let key = key_of(&parent, at(3));
    s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
    let scope = IdempotencyScope {
        api_key: key.id,
        method: "POST".to_owned(),
        route: "/v1/organizations/{orgId}/credits/allocate".to_owned(),
        key: IdempotencyKey::parse(&Uuid::new_v4().to_string()).unwrap(),
    };
    let fingerprint = Fingerprint::of("/allocate", b"{}");
    let ClaimOutcome::Claimed(claim) = s
        .idempotency
        .claim(&scope, fingerprint, Uuid::new_v4(), at(10), at(60_000_010))
        .await
        .unwrap()
    else {
        panic!("not claimed");
    };
    let done = PendingCompletion {
        claim,
        expires_at: later(),
        render: Box::new(|wallet: &Wallet| StoredResponse {
            status: 201,
            body: wallet.balance.to_string().into_bytes(),
        }),
    };
    let transfer = Some(TransferId::from_uuid(Uuid::new_v4()));
    s.credits
        .allocate(
            entry(parent.id, LedgerEventType::Allocation, -40, 20, transfer),
            entry(child.id, LedgerEventType::Allocation, 40, 20, transfer),
            &Trail::none(),
            Some(done),
        )
        .await
        .unwrap();
    let replay = s
        .idempotency
        .claim(&scope, fingerprint, Uuid::new_v4(), at(30), at(60_000_030))
        .await
        .unwrap();
    assert_eq!(
        replay,
        ClaimOutcome::Replay(StoredResponse {
            status: 201,
            body: b"40".to_vec()
        }),
        "rendered from the child's wallet after"
    );

    // A lost claim moves nothing.
    let lost = IdempotencyScope {
        key: IdempotencyKey::parse(&Uuid::new_v4().to_string()).unwrap(),
        ..scope
    };
    let ClaimOutcome::Claimed(stale) = s
        .idempotency
        .claim(&lost, fingerprint, Uuid::new_v4(), at(0), at(1))
        .await
        .unwrap()
    else {
        panic!("not claimed");
    };
    s.idempotency
        .claim(&lost, fingerprint, Uuid::new_v4(), at(2), at(60_000_002))
        .await
        .unwrap();
    let done = PendingCompletion {
        claim: stale,
        expires_at: later(),
        render: Box::new(|_: &Wallet| StoredResponse {
            status: 201,
            body: Vec::new(),
        }),
    };
    let result = s
        .credits
        .allocate(
            entry(parent.id, LedgerEventType::Allocation, -10, 40, transfer),
            entry(child.id, LedgerEventType::Allocation, 10, 40, transfer),
            &Trail::none(),
            Some(done),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(assert_consistent(s, child.id).await.balance, 40);
    assert_eq!(assert_consistent(s, parent.id).await.balance, 60);
}

/// Fifty concurrent allocations whose sum exceeds the parent's balance: exactly an affordable
/// number succeeds, the rest are refused, nothing is overdrawn, every ledger adds up.
pub async fn credits_concurrent_allocations_never_overdraw(s: &Stores) {
    let (parent, first_child) = family_with(s, 1_000).await;
    let mut children = vec![first_child];
    for i in 0..4 {
        let child = child_of(&parent, at(3 + i));
        s.organizations
            .insert(&child, &Trail::none(), None)
            .await
            .unwrap();
        children.push(child);
    }
    let barrier = Arc::new(Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (credits, barrier) = (s.credits.clone(), barrier.clone());
            let (parent, child) = (parent.clone(), children[i % children.len()].clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let transfer = Some(TransferId::from_uuid(Uuid::new_v4()));
                credits
                    .allocate(
                        entry(parent.id, LedgerEventType::Allocation, -30, 100, transfer),
                        entry(child.id, LedgerEventType::Allocation, 30, 100, transfer),
                        &Trail::none(),
                        None,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Allocation::Applied { .. } => applied += 1,
            Allocation::InsufficientFunds { available } => assert!(available < 30),
            Allocation::ChildClosed => panic!("no child was archived"),
        }
    }
    assert_eq!(applied, 33, "floor(1000 / 30) allocations fit");
    let parent_wallet = assert_consistent(s, parent.id).await;
    assert_eq!(parent_wallet.balance, 10);
    let mut total = parent_wallet.balance;
    for child in &children {
        total += assert_consistent(s, child.id).await.balance;
    }
    assert_eq!(total, 1_000, "credits are conserved");
}

/// An archive racing allocations into the child: what the parent got back plus what the
/// allocations that failed kept equals what was granted; nothing is lost or created.
pub async fn credits_archive_racing_allocations_conserves_credits(s: &Stores) {
    for round in 0..5 {
        let (parent, child) = family_with(s, 1_000).await;
        let barrier = Arc::new(Barrier::new(11));
        let allocations: Vec<_> = (0..10)
            .map(|_| {
                let (credits, barrier) = (s.credits.clone(), barrier.clone());
                let (parent, child) = (parent.clone(), child.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let transfer = Some(TransferId::from_uuid(Uuid::new_v4()));
                    credits
                        .allocate(
                            entry(parent.id, LedgerEventType::Allocation, -50, 100, transfer),
                            entry(child.id, LedgerEventType::Allocation, 50, 100, transfer),
                            &Trail::none(),
                            None,
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let archive = {
            let (organizations, barrier) = (s.organizations.clone(), barrier.clone());
            let (gone, expected) = (archived(&child, at(150)), child.revision);
            tokio::spawn(async move {
                barrier.wait().await;
                organizations
                    .archive(&gone, expected, reclaim(), &Trail::none(), None)
                    .await
                    .unwrap()
            })
        };
        let Archive::Applied {
            reclaimed_credits, ..
        } = archive.await.unwrap()
        else {
            panic!("round {round}: the only archive was stale");
        };
        let mut allocated = 0;
        for task in allocations {
            if let Allocation::Applied { .. } = task.await.unwrap() {
                allocated += 50;
            }
        }
        assert_eq!(
            reclaimed_credits, allocated,
            "round {round}: every allocated credit came back"
        );
        assert_eq!(
            assert_consistent(s, parent.id).await.balance,
            1_000,
            "round {round}"
        );
        assert_eq!(
            assert_consistent(s, child.id).await.balance,
            0,
            "round {round}"
        );
    }
}
