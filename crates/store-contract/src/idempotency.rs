//! Contract cases for idempotency records (API.md §1.6) and the completions written with effects.

use domain::trail::Trail;
use std::sync::Arc;

use domain::api_key::{ApiKey, SecretHash};
use domain::idempotency::{
    Claim, ClaimOutcome, Completion, Fingerprint, IdempotencyKey, IdempotencyScope,
    PendingCompletion, StoredResponse,
};
use domain::organization::{Organization, StatusKind};
use domain::ports::{Archive, StoreError};
use domain::webhooks::{EndpointScope, EventSelection};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::*;
use crate::Stores;

/// A stored API key (records reference one) and a scope of it.
async fn scope(s: &Stores) -> (Organization, IdempotencyScope) {
    let parent = top_level(at(0));
    s.organizations
        .insert(&parent, &Trail::none(), None)
        .await
        .unwrap();
    let key = key_of(&parent, at(1));
    s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
    let scope = IdempotencyScope {
        api_key: key.id,
        method: "POST".to_owned(),
        route: "/v1/organizations".to_owned(),
        key: IdempotencyKey::parse(&Uuid::new_v4().to_string()).unwrap(),
    };
    (parent, scope)
}

fn fingerprint(body: &str) -> Fingerprint {
    Fingerprint::of("/v1/organizations", body.as_bytes())
}

fn response(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        body: body.as_bytes().to_vec(),
    }
}

async fn claim(s: &Stores, scope: &IdempotencyScope, body: &str, now: i64) -> ClaimOutcome {
    s.idempotency
        .claim(
            scope,
            fingerprint(body),
            Uuid::new_v4(),
            at(now),
            at(now + 60_000_000),
        )
        .await
        .unwrap()
}

fn claimed(outcome: ClaimOutcome) -> Claim {
    match outcome {
        ClaimOutcome::Claimed(claim) => claim,
        other => panic!("expected a claim, got {other:?}"),
    }
}

fn completion(claim: &Claim, body: &str, expires: i64) -> Completion {
    Completion {
        claim: claim.clone(),
        response: response(body),
        expires_at: at(expires),
    }
}

pub async fn idempotency_claim_replay_mismatch_and_in_flight(s: &Stores) {
    let (_, scope) = scope(s).await;
    let first = claimed(claim(s, &scope, "a", 100).await);
    assert_eq!(first.scope, scope);
    assert_eq!(claim(s, &scope, "a", 101).await, ClaimOutcome::InFlight);
    assert_eq!(claim(s, &scope, "b", 102).await, ClaimOutcome::Mismatch);
    s.idempotency
        .complete(&completion(&first, "answer", 1_000_000_000))
        .await
        .unwrap();
    assert_eq!(
        claim(s, &scope, "a", 200).await,
        ClaimOutcome::Replay(response("answer"))
    );
    assert_eq!(claim(s, &scope, "b", 201).await, ClaimOutcome::Mismatch);
    // Completing again changes nothing: the first answer stays.
    s.idempotency
        .complete(&completion(&first, "other", 1_000_000_000))
        .await
        .unwrap();
    assert_eq!(
        claim(s, &scope, "a", 300).await,
        ClaimOutcome::Replay(response("answer"))
    );
    // Another key of the same API key is independent.
    let other = IdempotencyScope {
        key: IdempotencyKey::parse(&Uuid::new_v4().to_string()).unwrap(),
        ..scope.clone()
    };
    claimed(claim(s, &other, "a", 400).await);
    let other_route = IdempotencyScope {
        route: "/v1/organizations/{orgId}".to_owned(),
        ..scope
    };
    claimed(claim(s, &other_route, "a", 400).await);
}

pub async fn idempotency_expired_abandoned_and_released_claims_are_claimable(s: &Stores) {
    let (_, scope) = scope(s).await;
    let first = claimed(claim(s, &scope, "a", 0).await);
    // Abandoned: in flight past its lease (60 s) — even a different request may take the key.
    claimed(claim(s, &scope, "b", 60_000_001).await);
    // The first request's completion is refused now: its claim was lost.
    s.idempotency
        .complete(&completion(&first, "late", 999_000_000))
        .await
        .unwrap();
    assert_eq!(
        claim(s, &scope, "b", 60_000_002).await,
        ClaimOutcome::InFlight
    );
    // Released: claimable at once.
    let (_, scope) = self::scope(s).await;
    let held = claimed(claim(s, &scope, "a", 0).await);
    s.idempotency.release(&held).await.unwrap();
    claimed(claim(s, &scope, "a", 1).await);
    // Expired after its replay window.
    let (_, scope) = self::scope(s).await;
    let done = claimed(claim(s, &scope, "a", 0).await);
    s.idempotency
        .complete(&completion(&done, "answer", 500))
        .await
        .unwrap();
    assert_eq!(
        claim(s, &scope, "a", 499).await,
        ClaimOutcome::Replay(response("answer"))
    );
    claimed(claim(s, &scope, "b", 500).await);
}

pub async fn idempotency_completion_is_written_with_the_effect(s: &Stores) {
    let (parent, scope) = scope(s).await;
    let hold = claimed(claim(s, &scope, "create", 10).await);
    let child = child_of(&parent, at(20));
    s.organizations
        .insert(
            &child,
            &Trail::none(),
            Some(completion(&hold, "created", 1_000_000_000)),
        )
        .await
        .unwrap();
    assert_eq!(
        claim(s, &scope, "create", 30).await,
        ClaimOutcome::Replay(response("created"))
    );

    // The same through a key insert, an update and a rotation.
    for (i, write) in ["key", "update", "rotate"].into_iter().enumerate() {
        let (_, scope) = self::scope(s).await;
        let hold = claimed(claim(s, &scope, write, 10).await);
        let done = Some(completion(&hold, write, 1_000_000_000));
        match write {
            "key" => {
                s.api_keys
                    .insert(&key_of(&child, at(40 + i as i64)), &Trail::none(), done)
                    .await
                    .unwrap();
            }
            "update" => {
                let current = s.organizations.find(child.id).await.unwrap().unwrap();
                let next = suspended(&current, at(50));
                s.organizations
                    .update(&next, current.revision, &Trail::none(), done)
                    .await
                    .unwrap();
            }
            _ => {
                let old = key_of(&child, at(60));
                s.api_keys.insert(&old, &Trail::none(), None).await.unwrap();
                let new = key_of(&child, at(61));
                let grace = domain::api_key::Supersession {
                    by: new.id,
                    grace_until: at(1_000),
                };
                s.api_keys
                    .rotate(old.id, grace, at(61), &new, &Trail::none(), done)
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            claim(s, &scope, write, 70).await,
            ClaimOutcome::Replay(response(write)),
            "{write}"
        );
    }
}

pub async fn idempotency_a_lost_claim_writes_no_effect(s: &Stores) {
    let (parent, scope) = scope(s).await;
    let lost = claimed(claim(s, &scope, "a", 0).await);
    claimed(claim(s, &scope, "a", 60_000_001).await);
    let child = child_of(&parent, at(20));
    let result = s
        .organizations
        .insert(
            &child,
            &Trail::none(),
            Some(completion(&lost, "created", 1_000_000_000)),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        s.organizations.find(child.id).await.unwrap(),
        None,
        "the effect was written"
    );
    let key = key_of(&parent, at(30));
    let result = s
        .api_keys
        .insert(
            &key,
            &Trail::none(),
            Some(completion(&lost, "key", 1_000_000_000)),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(s.api_keys.find(key.id).await.unwrap(), None);
}

/// An archive's answer holds figures only the store knows as it writes (keys revoked, credits
/// swept): it is rendered and recorded in the same atomic change, and a lost claim archives
/// nothing.
pub async fn idempotency_an_archive_records_its_figures_with_the_effect(s: &Stores) {
    let (parent, scope) = scope(s).await;
    let render = |archived: &Archive| match archived {
        Archive::Applied {
            revoked_keys,
            reclaimed_credits,
        } => response(&format!("{revoked_keys} keys, {reclaimed_credits} credits")),
        Archive::Stale => response("stale"),
    };
    let pending = |claim: Claim| PendingCompletion {
        claim,
        expires_at: at(1_000_000_000),
        render: Box::new(render),
    };

    // A lost claim: nothing is archived, no key revoked.
    let lost = claimed(claim(s, &scope, "a", 0).await);
    let current = claimed(claim(s, &scope, "a", 60_000_001).await);
    let child = child_of(&parent, at(20));
    s.organizations
        .insert(&child, &Trail::none(), None)
        .await
        .unwrap();
    let key = key_of(&child, at(21));
    s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
    let gone = archived(&child, at(22));
    let result = s
        .organizations
        .archive(
            &gone,
            child.revision,
            reclaim(),
            &Trail::none(),
            Some(pending(lost)),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let kept = s.organizations.find(child.id).await.unwrap().unwrap();
    assert_eq!(
        kept.status.kind(),
        StatusKind::Active,
        "the effect was written"
    );
    assert!(s
        .api_keys
        .find(key.id)
        .await
        .unwrap()
        .unwrap()
        .is_usable_at(at(23)));

    // The claim held: archived, and the answer recorded from what the store did.
    let outcome = s
        .organizations
        .archive(
            &gone,
            child.revision,
            reclaim(),
            &Trail::none(),
            Some(pending(current)),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Archive::Applied {
            revoked_keys: 1,
            reclaimed_credits: 0
        }
    );
    assert_eq!(
        claim(s, &scope, "a", 60_000_002).await,
        ClaimOutcome::Replay(response("1 keys, 0 credits"))
    );
}

/// An in-place rotation's answer is the changed key with its new secret: rendered and recorded
/// with the change, so a retry replays that secret instead of rotating once more; a lost claim
/// changes nothing.
pub async fn idempotency_an_in_place_rotation_records_its_answer_with_the_effect(s: &Stores) {
    let (parent, scope) = scope(s).await;
    let key = key_of(&parent, at(20));
    s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
    let pending = |claim: Claim| PendingCompletion {
        claim,
        expires_at: at(1_000_000_000),
        render: Box::new(|key: &ApiKey| response(key.handle.as_str())),
    };
    let new_handle = crate::fixtures::handle();
    let new_hash = SecretHash::of("the new secret");

    let lost = claimed(claim(s, &scope, "a", 0).await);
    let current = claimed(claim(s, &scope, "a", 60_000_001).await);
    let result = s
        .api_keys
        .replace_secret(
            key.id,
            &new_handle,
            &new_hash,
            at(30),
            &Trail::none(),
            Some(pending(lost)),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        s.api_keys.find(key.id).await.unwrap(),
        Some(key.clone()),
        "the effect was written"
    );

    let replaced = s
        .api_keys
        .replace_secret(
            key.id,
            &new_handle,
            &new_hash,
            at(30),
            &Trail::none(),
            Some(pending(current)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.handle, new_handle);
    assert_eq!(
        claim(s, &scope, "a", 60_000_002).await,
        ClaimOutcome::Replay(response(new_handle.as_str()))
    );
}

/// A revoke's and a kill's answers are recorded with the change (rendered from the key as
/// changed); a lost claim changes nothing.
pub async fn idempotency_a_revoke_and_a_kill_record_their_answers_with_the_effect(s: &Stores) {
    let (parent, _) = scope(s).await;
    for kill in [false, true] {
        let (_, scope) = scope(s).await;
        let key = key_of(&parent, at(20));
        s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
        let pending = |claim: Claim| PendingCompletion {
            claim,
            expires_at: at(1_000_000_000),
            render: Box::new(|key: &ApiKey| {
                response(if key.is_usable_at(at(31)) {
                    "usable"
                } else {
                    "refused"
                })
            }),
        };
        let no_trail = Trail::none();
        let change = |claim: Claim| {
            let done = Some(pending(claim));
            if kill {
                s.api_keys.kill(key.id, at(30), &no_trail, done)
            } else {
                s.api_keys.revoke(key.id, at(30), &no_trail, done)
            }
        };
        let lost = claimed(claim(s, &scope, "a", 0).await);
        let current = claimed(claim(s, &scope, "a", 60_000_001).await);
        let result = change(lost).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        let kept = s.api_keys.find(key.id).await.unwrap();
        assert_eq!(
            kept,
            Some(key.clone()),
            "kill {kill}: the effect was written"
        );

        let changed = change(current).await.unwrap().unwrap();
        assert!(!changed.is_usable_at(at(31)), "kill {kill}");
        assert_eq!(
            claim(s, &scope, "a", 60_000_002).await,
            ClaimOutcome::Replay(response("refused")),
            "kill {kill}"
        );
    }
}

/// An endpoint's deletion is recorded with it: a deleted endpoint is `404` from then on, so a
/// retry must find the answer, not run again. A lost claim deletes nothing.
pub async fn idempotency_an_endpoint_deletion_records_its_answer_with_the_effect(s: &Stores) {
    let (parent, scope) = scope(s).await;
    let hooks = crate::trails::endpoint(&parent, EndpointScope::Own, EventSelection::All);
    s.webhooks
        .insert_endpoint(&hooks, &Trail::none(), None)
        .await
        .unwrap();
    let lost = claimed(claim(s, &scope, "a", 0).await);
    let current = claimed(claim(s, &scope, "a", 60_000_001).await);
    let result = s
        .webhooks
        .delete_endpoint(
            hooks.id,
            &Trail::none(),
            Some(completion(&lost, "deleted", 1_000_000_000)),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        s.webhooks.find_endpoint(hooks.id).await.unwrap(),
        Some(hooks.clone())
    );

    let deleted = s
        .webhooks
        .delete_endpoint(
            hooks.id,
            &Trail::none(),
            Some(completion(&current, "deleted", 1_000_000_000)),
        )
        .await
        .unwrap();
    assert!(deleted);
    assert_eq!(s.webhooks.find_endpoint(hooks.id).await.unwrap(), None);
    assert_eq!(
        claim(s, &scope, "a", 60_000_002).await,
        ClaimOutcome::Replay(response("deleted"))
    );
}

pub async fn idempotency_complete_with_another_token_changes_nothing(s: &Stores) {
    let (_, scope) = scope(s).await;
    let hold = claimed(claim(s, &scope, "a", 0).await);
    let impostor = Claim {
        token: Uuid::new_v4(),
        ..hold.clone()
    };
    s.idempotency
        .complete(&completion(&impostor, "forged", 1_000_000_000))
        .await
        .unwrap();
    s.idempotency.release(&impostor).await.unwrap();
    assert_eq!(claim(s, &scope, "a", 1).await, ClaimOutcome::InFlight);
    s.idempotency
        .complete(&completion(&hold, "real", 1_000_000_000))
        .await
        .unwrap();
    assert_eq!(
        claim(s, &scope, "a", 2).await,
        ClaimOutcome::Replay(response("real"))
    );
}

pub async fn idempotency_purge_deletes_only_expired_records(s: &Stores) {
    let (_, scope) = scope(s).await;
    let done = claimed(claim(s, &scope, "a", 0).await);
    s.idempotency
        .complete(&completion(&done, "answer", 1_000))
        .await
        .unwrap();
    let (_, live) = self::scope(s).await;
    let kept = claimed(claim(s, &live, "a", 0).await);
    s.idempotency
        .complete(&completion(&kept, "answer", 5_000))
        .await
        .unwrap();
    assert_eq!(s.idempotency.purge_expired(at(2_000)).await.unwrap(), 1);
    assert_eq!(
        claim(s, &live, "a", 2_001).await,
        ClaimOutcome::Replay(response("answer"))
    );
    claimed(claim(s, &scope, "a", 2_002).await);
}

/// Many identical requests with one key at the same moment: exactly one runs.
pub async fn idempotency_concurrent_claims_of_one_key_claim_once(s: &Stores) {
    for round in 0..10 {
        let (_, scope) = scope(s).await;
        let barrier = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (idempotency, barrier, scope) =
                    (s.idempotency.clone(), barrier.clone(), scope.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    idempotency
                        .claim(
                            &scope,
                            fingerprint("same"),
                            Uuid::new_v4(),
                            at(10),
                            at(60_000_010),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut claims = 0;
        for task in tasks {
            match task.await.unwrap() {
                ClaimOutcome::Claimed(_) => claims += 1,
                ClaimOutcome::InFlight => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(claims, 1, "round {round}");
    }
}
