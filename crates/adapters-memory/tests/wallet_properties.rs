//! Random sequences of wallet operations, through the domain's use cases on the embedded store,
//! with the credit invariants checked after every step (API.md §6): for every wallet the sum of
//! its ledger is its balance, `reserved <= balance` (so `available` is never negative), and
//! credits are conserved — what exists is what was granted, wherever it moved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use adapters_memory::MemoryStore;
use domain::api_key::RateLimitTier;
use domain::credits::{LedgerFilter, ReservationId};
use domain::organization::OrganizationName;
use domain::pagination::PageRequest;
use domain::policy::Principal;
use domain::ports::{Clock, CreditStore, RandomSource};
use domain::use_cases::{
    ControlPlane, NewAllocation, NewApiKey, NewOrganization, NewReservation, Ports, RequestContext,
};
use domain::{OrganizationId, Timestamp};
use futures_executor::block_on;
use proptest::prelude::*;

/// A clock the sequence moves forward (reservations expire after an hour).
struct StepClock(AtomicI64);

impl Clock for StepClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(1_780_000_000_000_000 + self.0.load(Ordering::SeqCst)).unwrap()
    }
}

/// Deterministic bytes: ids and secrets need only be distinct here.
struct Counter(AtomicU64);

impl RandomSource for Counter {
    fn fill(&self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let n = self
                .0
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst)
                .to_le_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Grant(u16),
    Allocate {
        child: usize,
        credits: u16,
    },
    Reserve {
        child: usize,
        credits: u16,
    },
    Settle {
        reservation: usize,
        percent: u8,
    },
    Release {
        reservation: usize,
    },
    Refill {
        child: usize,
        threshold: u16,
        amount: u16,
    },
    Archive {
        child: usize,
    },
    Suspend {
        child: usize,
    },
    Resume {
        child: usize,
    },
    PassAnHour,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u16..2_000).prop_map(Step::Grant),
        (0usize..3, 1u16..800).prop_map(|(child, credits)| Step::Allocate { child, credits }),
        (0usize..3, 1u16..400).prop_map(|(child, credits)| Step::Reserve { child, credits }),
        (0usize..8, 0u8..=100).prop_map(|(reservation, percent)| Step::Settle {
            reservation,
            percent
        }),
        (0usize..8).prop_map(|reservation| Step::Release { reservation }),
        (0usize..3, 0u16..300, 1u16..300).prop_map(|(child, threshold, amount)| Step::Refill {
            child,
            threshold,
            amount
        }),
        (0usize..3).prop_map(|child| Step::Archive { child }),
        (0usize..3).prop_map(|child| Step::Suspend { child }),
        (0usize..3).prop_map(|child| Step::Resume { child }),
        Just(Step::PassAnHour),
    ]
}

/// No endpoint is ever created here, so nothing is sent.
struct NoWebhooks;

#[async_trait::async_trait]
impl domain::ports::WebhookSender for NoWebhooks {
    async fn vet(&self, _: &domain::webhooks::WebhookUrl) -> Result<(), String> {
        Err("no webhooks in this test".into())
    }

    async fn send(&self, _: domain::ports::OutboundRequest) -> domain::ports::SendOutcome {
        domain::ports::SendOutcome::NoAnswer {
            error: "no webhooks in this test".into(),
        }
    }
}

/// Bodies in Rust's debug form: this test reads no trail.
struct DebugPresenter;

impl domain::ports::Presenter for DebugPresenter {
    fn event_body(&self, event: &domain::trail::EventDraft) -> String {
        format!("{event:?}")
    }

    fn replay_body(&self, original: &str, _: domain::webhooks::EventId, _: Timestamp) -> String {
        original.to_owned()
    }

    fn audit_data(&self, data: &domain::audit::AuditData) -> String {
        format!("{data:?}")
    }
}

struct World {
    plane: ControlPlane,
    store: Arc<MemoryStore>,
    clock: Arc<StepClock>,
    parent: Principal,
    /// Each child's id and a key of it that may spend.
    children: Vec<(OrganizationId, Principal)>,
    reservations: Vec<ReservationId>,
    granted: u64,
}

impl World {
    async fn new() -> World {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(StepClock(AtomicI64::new(0)));
        let plane = ControlPlane::new(Ports {
            organizations: store.clone(),
            api_keys: store.clone(),
            credits: store.clone(),
            jobs: store.clone(),
            idempotency: store.clone(),
            audit: store.clone(),
            webhooks: store.clone(),
            sender: Arc::new(NoWebhooks),
            presenter: Arc::new(DebugPresenter),
            clock: clock.clone(),
            random: Arc::new(Counter(AtomicU64::new(1))),
        });
        let (_, admin) = plane
            .create_top_level(
                OrganizationName::parse("Partner").unwrap(),
                RateLimitTier::Unlimited,
            )
            .await
            .unwrap();
        let parent = plane
            .authenticate(admin.secret.reveal(), &RequestContext::default())
            .await
            .unwrap();
        let mut children = Vec::new();
        for i in 0..3 {
            let input = NewOrganization {
                name: format!("child {i}"),
                ..NewOrganization::default()
            };
            let child = plane
                .create_organization(&parent, input, None)
                .await
                .unwrap();
            let key = NewApiKey {
                name: "meter".into(),
                scopes: vec!["credits:read".into(), "credits:write".into()],
                env: None,
            };
            let minted = plane
                .mint_api_key(&parent, child.id, key, None)
                .await
                .unwrap();
            let principal = plane
                .authenticate(minted.secret.reveal(), &RequestContext::default())
                .await
                .unwrap();
            children.push((child.id, principal));
        }
        World {
            plane,
            store,
            clock,
            parent,
            children,
            reservations: Vec::new(),
            granted: 0,
        }
    }

    /// Applies a step; refusals (402, 409, 503…) are fine, errors of the store are not.
    async fn apply(&mut self, step: &Step) {
        let plane = &self.plane;
        let result: Result<(), domain::DomainError> = match step.clone() {
            Step::Grant(credits) => plane
                .grant_credits(self.parent.organization.id, i64::from(credits), None)
                .await
                .map(|_| self.granted += u64::from(credits)),
            Step::Allocate { child, credits } => {
                let input = NewAllocation {
                    credits: i64::from(credits),
                    ..NewAllocation::default()
                };
                plane
                    .allocate_credits(&self.parent, self.children[child].0, input, None)
                    .await
                    .map(drop)
            }
            Step::Reserve { child, credits } => {
                // Re-read the child's key so the principal sees the organization's current status.
                let principal = self.children[child].1.clone();
                let input = NewReservation {
                    credits: i64::from(credits),
                    description: None,
                };
                plane
                    .reserve_credits(&principal, input, None)
                    .await
                    .map(|r| self.reservations.push(r.id))
            }
            Step::Settle {
                reservation,
                percent,
            } => match self.reservations.get(reservation).copied() {
                Some(id) => {
                    let owner = self.owner(id).await;
                    let held = self
                        .store
                        .find_reservation(id)
                        .await
                        .unwrap()
                        .unwrap()
                        .credits;
                    let spent = i64::try_from(held * u64::from(percent) / 100).unwrap();
                    plane.settle_reservation(&owner, id, spent).await.map(drop)
                }
                None => Ok(()),
            },
            Step::Release { reservation } => match self.reservations.get(reservation).copied() {
                Some(id) => {
                    let owner = self.owner(id).await;
                    plane.release_reservation(&owner, id).await.map(drop)
                }
                None => Ok(()),
            },
            Step::Refill {
                child,
                threshold,
                amount,
            } => {
                let patch = domain::credits::CreditConfigPatch {
                    refill_threshold: Some(Some(i64::from(threshold))),
                    refill_amount: Some(Some(i64::from(amount))),
                    ..Default::default()
                };
                plane
                    .update_credit_config(&self.parent, self.children[child].0, patch)
                    .await
                    .map(drop)
            }
            Step::Archive { child } => plane
                .archive_organization(&self.parent, self.children[child].0, None)
                .await
                .map(drop),
            Step::Suspend { child } => plane
                .suspend_organization(&self.parent, self.children[child].0, None, None)
                .await
                .map(drop),
            Step::Resume { child } => plane
                .resume_organization(&self.parent, self.children[child].0, None)
                .await
                .map(drop),
            Step::PassAnHour => {
                self.clock.0.fetch_add(3_600_000_001, Ordering::SeqCst);
                plane.run_scheduled_work().await.map(drop)
            }
        };
        if let Err(domain::DomainError::Store(error)) = result {
            panic!("{step:?}: the store failed: {error}");
        }
    }

    /// The child principal owning a reservation (its status refreshed, as the gate would).
    async fn owner(&self, id: ReservationId) -> Principal {
        let reservation = self.store.find_reservation(id).await.unwrap().unwrap();
        let (_, principal) = self
            .children
            .iter()
            .find(|(org, _)| *org == reservation.organization_id)
            .unwrap();
        principal.clone()
    }

    async fn check(&self, after: &Step) {
        let mut total = 0u64;
        let all = std::iter::once(self.parent.organization.id)
            .chain(self.children.iter().map(|(id, _)| *id));
        for org in all {
            let wallet = self.store.wallet(org).await.unwrap();
            let page = PageRequest {
                after: None,
                limit: 100_000,
            };
            let ledger = self
                .store
                .ledger(org, LedgerFilter::default(), page)
                .await
                .unwrap();
            let sum: i64 = ledger.iter().map(|e| e.entry.credits).sum();
            assert_eq!(
                u64::try_from(sum).unwrap(),
                wallet.balance,
                "after {after:?}: ledger sum vs balance of {org}"
            );
            assert!(
                wallet.reserved <= wallet.balance,
                "after {after:?}: {wallet:?}"
            );
            total += wallet.balance;
        }
        let spent: u64 = {
            let mut spent = 0;
            for (org, _) in &self.children {
                spent += self
                    .store
                    .usage_between(
                        *org,
                        Timestamp::from_unix_micros(0).unwrap(),
                        self.clock.now().plus(time::Duration::days(1)),
                    )
                    .await
                    .unwrap();
            }
            spent
        };
        assert_eq!(
            total + spent,
            self.granted,
            "after {after:?}: credits created or lost"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn wallet_invariants_hold_after_every_step(steps in proptest::collection::vec(step(), 1..40)) {
        block_on(async {
            let mut world = World::new().await;
            for step in &steps {
                world.apply(step).await;
                world.check(step).await;
            }
        });
    }
}
