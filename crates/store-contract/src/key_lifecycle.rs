//! Contract cases for the key lifecycle beyond revocation: kill, rotation with a grace window,
//! in-place secret replacement, the rate-limit tier and `last_used_at`.

use domain::trail::Trail;
use std::sync::Arc;

use domain::api_key::{ApiKey, KeyStatus, RateLimitTier, SecretHash, Supersession};
use domain::organization::Organization;
use domain::ports::{Archive, Rotation};
use tokio::sync::Barrier;

use crate::fixtures::*;
use crate::Stores;

async fn stored(s: &Stores, key: &ApiKey) -> ApiKey {
    s.api_keys.find(key.id).await.unwrap().unwrap()
}

async fn child_with_key(s: &Stores) -> (Organization, ApiKey) {
    let (_, child) = family_at(s, at(10)).await;
    let key = key_of(&child, at(20));
    s.api_keys.insert(&key, &Trail::none(), None).await.unwrap();
    (child, key)
}

fn grace(by: &ApiKey, until: domain::Timestamp) -> Supersession {
    Supersession {
        by: by.id,
        grace_until: until,
    }
}

pub async fn kill_kills_a_usable_key_once(s: &Stores) {
    let (_, key) = child_with_key(s).await;
    let killed = ApiKey {
        status: KeyStatus::Killed { at: at(100) },
        ..key.clone()
    };
    assert_eq!(
        s.api_keys
            .kill(key.id, at(100), &Trail::none(), None)
            .await
            .unwrap(),
        Some(killed.clone())
    );
    assert_eq!(
        s.api_keys
            .kill(key.id, at(200), &Trail::none(), None)
            .await
            .unwrap(),
        Some(killed.clone())
    );
    // Neither revoke nor archive rewrites how a killed key ended.
    assert_eq!(
        s.api_keys
            .revoke(key.id, at(300), &Trail::none(), None)
            .await
            .unwrap(),
        Some(killed.clone())
    );
    assert_eq!(stored(s, &key).await, killed);
    assert_eq!(
        s.api_keys
            .kill(key_id(), at(1), &Trail::none(), None)
            .await
            .unwrap(),
        None
    );
}

pub async fn rotate_supersedes_the_old_key_and_inserts_the_new(s: &Stores) {
    let (child, old) = child_with_key(s).await;
    let new = key_of(&child, at(100));
    let supersession = grace(&new, at(1_000));
    let outcome = s
        .api_keys
        .rotate(old.id, supersession, at(100), &new, &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::Applied);
    assert_eq!(stored(s, &new).await, new);
    let expected_old = ApiKey {
        rotated_at: Some(at(100)),
        superseded: Some(supersession),
        ..old.clone()
    };
    assert_eq!(stored(s, &old).await, expected_old);
    // Usable until the grace ends, exactly; counted until then.
    assert!(expected_old.is_usable_at(at(999)) && !expected_old.is_usable_at(at(1_000)));
    assert_eq!(s.api_keys.count_active(child.id, at(999)).await.unwrap(), 2);
    assert_eq!(
        s.api_keys.count_active(child.id, at(1_000)).await.unwrap(),
        1
    );
}

pub async fn rotate_refuses_a_superseded_revoked_or_expired_key(s: &Stores) {
    let (child, old) = child_with_key(s).await;
    let first = key_of(&child, at(100));
    s.api_keys
        .rotate(
            old.id,
            grace(&first, at(1_000)),
            at(100),
            &first,
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    // Superseded already.
    let second = key_of(&child, at(110));
    let outcome = s
        .api_keys
        .rotate(
            old.id,
            grace(&second, at(2_000)),
            at(110),
            &second,
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::KeyNotRotatable);
    assert_eq!(
        s.api_keys.find(second.id).await.unwrap(),
        None,
        "nothing written"
    );
    // Revoked.
    s.api_keys
        .revoke(first.id, at(120), &Trail::none(), None)
        .await
        .unwrap();
    let third = key_of(&child, at(130));
    let outcome = s
        .api_keys
        .rotate(
            first.id,
            grace(&third, at(2_000)),
            at(130),
            &third,
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::KeyNotRotatable);
    assert_eq!(s.api_keys.find(third.id).await.unwrap(), None);
    // Unknown.
    let fourth = key_of(&child, at(140));
    let outcome = s
        .api_keys
        .rotate(
            key_id(),
            grace(&fourth, at(2_000)),
            at(140),
            &fourth,
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::KeyNotRotatable);
}

pub async fn rotate_in_an_archived_organization_is_refused(s: &Stores) {
    let (child, old) = child_with_key(s).await;
    // Archive first (which revokes the key), then put back a usable key the store would rotate.
    let gone = archived(&child, at(50));
    assert!(matches!(
        s.organizations
            .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
            .await
            .unwrap(),
        Archive::Applied { .. }
    ));
    let new = key_of(&child, at(100));
    let outcome = s
        .api_keys
        .rotate(
            old.id,
            grace(&new, at(1_000)),
            at(100),
            &new,
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_ne!(outcome, Rotation::Applied);
    assert_eq!(s.api_keys.find(new.id).await.unwrap(), None);
}

pub async fn replace_secret_swaps_the_handle_in_place(s: &Stores) {
    let (_, key) = child_with_key(s).await;
    let new_handle = handle();
    let new_hash = SecretHash::of("a new secret");
    let replaced = s
        .api_keys
        .replace_secret(
            key.id,
            &new_handle,
            &new_hash,
            at(100),
            &Trail::none(),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let expected = ApiKey {
        handle: new_handle.clone(),
        secret_hash: new_hash,
        rotated_at: Some(at(100)),
        ..key.clone()
    };
    assert_eq!(replaced, expected);
    assert_eq!(stored(s, &key).await, expected);
    assert!(
        s.api_keys
            .find_credentials(&key.handle)
            .await
            .unwrap()
            .is_none(),
        "the old handle is gone"
    );
    let found = s
        .api_keys
        .find_credentials(&new_handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key, expected);
}

pub async fn replace_secret_of_an_unusable_key_changes_nothing(s: &Stores) {
    let (_, key) = child_with_key(s).await;
    let revoked_key = s
        .api_keys
        .revoke(key.id, at(50), &Trail::none(), None)
        .await
        .unwrap()
        .unwrap();
    let answer = s
        .api_keys
        .replace_secret(
            key.id,
            &handle(),
            &SecretHash::of("x"),
            at(100),
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer, Some(revoked_key.clone()));
    assert_eq!(stored(s, &key).await, revoked_key);
    assert_eq!(
        s.api_keys
            .replace_secret(
                key_id(),
                &handle(),
                &SecretHash::of("x"),
                at(1),
                &Trail::none(),
                None,
            )
            .await
            .unwrap(),
        None
    );
}

pub async fn replace_secret_with_a_taken_handle_is_duplicate(s: &Stores) {
    let (child, key) = child_with_key(s).await;
    let other = key_of(&child, at(30));
    s.api_keys
        .insert(&other, &Trail::none(), None)
        .await
        .unwrap();
    let result = s
        .api_keys
        .replace_secret(
            key.id,
            &other.handle,
            &SecretHash::of("x"),
            at(100),
            &Trail::none(),
            None,
        )
        .await;
    assert!(
        matches!(result, Err(domain::ports::StoreError::Duplicate(_))),
        "{result:?}"
    );
    assert_eq!(stored(s, &key).await, key);
}

pub async fn set_rate_limit_tier_round_trips(s: &Stores) {
    let (_, key) = child_with_key(s).await;
    let changed = s
        .api_keys
        .set_rate_limit_tier(key.id, RateLimitTier::Unlimited)
        .await
        .unwrap();
    let expected = ApiKey {
        rate_limit_tier: RateLimitTier::Unlimited,
        ..key.clone()
    };
    assert_eq!(changed, Some(expected.clone()));
    assert_eq!(stored(s, &key).await, expected);
    assert_eq!(
        s.api_keys
            .set_rate_limit_tier(key_id(), RateLimitTier::Pilot)
            .await
            .unwrap(),
        None
    );
}

pub async fn record_last_used_only_raises(s: &Stores) {
    let (child, key) = child_with_key(s).await;
    let other = key_of(&child, at(30));
    s.api_keys
        .insert(&other, &Trail::none(), None)
        .await
        .unwrap();
    s.api_keys
        .record_last_used(&[(key.id, at(500)), (other.id, at(400)), (key_id(), at(1))])
        .await
        .unwrap();
    s.api_keys
        .record_last_used(&[(key.id, at(300))])
        .await
        .unwrap();
    assert_eq!(stored(s, &key).await.last_used_at, Some(at(500)));
    assert_eq!(stored(s, &other).await.last_used_at, Some(at(400)));
    s.api_keys.record_last_used(&[]).await.unwrap();
}

pub async fn archive_and_revoke_leave_expired_and_killed_keys_as_they_ended(s: &Stores) {
    let (child, old) = child_with_key(s).await;
    let new = key_of(&child, at(100));
    s.api_keys
        .rotate(
            old.id,
            grace(&new, at(200)),
            at(100),
            &new,
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    let doomed = key_of(&child, at(110));
    s.api_keys
        .insert(&doomed, &Trail::none(), None)
        .await
        .unwrap();
    s.api_keys
        .kill(doomed.id, at(150), &Trail::none(), None)
        .await
        .unwrap();
    let expired = stored(s, &old).await;
    // Past the grace: revoking the old key changes nothing; archive revokes only the new key.
    assert_eq!(
        s.api_keys
            .revoke(old.id, at(300), &Trail::none(), None)
            .await
            .unwrap(),
        Some(expired.clone())
    );
    let gone = archived(&child, at(400));
    assert_eq!(
        s.organizations
            .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
            .await
            .unwrap(),
        Archive::Applied {
            revoked_keys: 1,
            reclaimed_credits: 0
        }
    );
    assert_eq!(stored(s, &old).await, expired);
    assert_eq!(
        stored(s, &doomed).await.status,
        KeyStatus::Killed { at: at(150) }
    );
    assert_eq!(
        stored(s, &new).await.status,
        KeyStatus::Revoked { at: at(400) }
    );
}

/// Rotation racing revocation of the same key: either the rotation happened (and the new key is
/// stored) or it was refused (and nothing was written) — never a new key minted from a key
/// revoked first. Concurrent rotations of one key: exactly one applies.
pub async fn rotate_racing_revoke_and_rotate_is_atomic(s: &Stores) {
    for round in 0..10i64 {
        let (child, old) = child_with_key(s).await;
        let barrier = Arc::new(Barrier::new(4));
        let mut rotations = Vec::new();
        for i in 0..3i64 {
            let (api_keys, barrier) = (s.api_keys.clone(), barrier.clone());
            let new = key_of(&child, at(1_000 + round * 10 + i));
            let old_id = old.id;
            rotations.push(tokio::spawn(async move {
                barrier.wait().await;
                let outcome = api_keys
                    .rotate(
                        old_id,
                        grace(&new, at(100_000)),
                        at(1_000),
                        &new,
                        &Trail::none(),
                        None,
                    )
                    .await;
                (new, outcome)
            }));
        }
        let revoke = {
            let (api_keys, barrier) = (s.api_keys.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                api_keys
                    .revoke(old.id, at(1_000), &Trail::none(), None)
                    .await
            })
        };
        revoke.await.unwrap().unwrap();
        let mut applied = 0;
        for task in rotations {
            let (new, outcome) = task.await.unwrap();
            match outcome.unwrap() {
                Rotation::Applied => {
                    applied += 1;
                    assert_eq!(
                        stored(s, &new).await,
                        new,
                        "round {round}: the applied rotation's key is stored"
                    );
                }
                other => {
                    assert_eq!(other, Rotation::KeyNotRotatable);
                    assert_eq!(
                        s.api_keys.find(new.id).await.unwrap(),
                        None,
                        "round {round}: refused key stored"
                    );
                }
            }
        }
        assert!(
            applied <= 1,
            "round {round}: {applied} rotations of one key applied"
        );
        let old_now = stored(s, &old).await;
        assert_eq!(
            old_now.superseded.is_some(),
            applied == 1,
            "round {round}: {old_now:?}"
        );
    }
}
