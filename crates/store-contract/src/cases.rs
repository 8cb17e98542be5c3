//! The contract cases, one per promise of the ports. Each takes a fresh [`Stores`] and panics
//! with the offending value when the store breaks the contract.

use domain::trail::Trail;
use std::sync::Arc;

use domain::api_key::{ApiKey, KeyStatus};
use domain::organization::{
    BillingEmail, Organization, OrganizationName, OrganizationStatus, Revision, StatusKind,
};
use domain::pagination::PageRequest;
use domain::ports::{Archive, KeyInsert, StoreError, Write};
use domain::Timestamp;
use tokio::sync::Barrier;

use crate::fixtures::*;
use crate::Stores;

// ---------------------------------------------------------------------------------------------
// Helpers

async fn insert_org(s: &Stores, org: &Organization) {
    s.organizations
        .insert(org, &Trail::none(), None)
        .await
        .unwrap_or_else(|e| panic!("inserting {org:?}: {e}"));
}

async fn insert_key(s: &Stores, key: &ApiKey) {
    let outcome = s
        .api_keys
        .insert(key, &Trail::none(), None)
        .await
        .unwrap_or_else(|e| panic!("inserting {key:?}: {e}"));
    assert_eq!(outcome, KeyInsert::Inserted, "inserting {key:?}");
}

async fn stored_org(s: &Stores, org: &Organization) -> Organization {
    s.organizations
        .find(org.id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("organization {} not found", org.id))
}

async fn stored_key(s: &Stores, key: &ApiKey) -> ApiKey {
    s.api_keys
        .find(key.id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("key {} not found", key.id))
}

/// A top-level organization with one child, both stored.
async fn family(s: &Stores) -> (Organization, Organization) {
    family_at(s, at(10)).await
}

fn org_order(org: &Organization) -> (Timestamp, uuid::Uuid) {
    (org.created_at, org.id.as_uuid())
}

fn key_order(key: &ApiKey) -> (Timestamp, uuid::Uuid) {
    (key.created_at, key.id.as_uuid())
}

/// Every row, page by page with `limit`: each page asked for strictly after the last row of the
/// one before, until a page comes back empty. More than `at_most` rows means pages repeat rows.
async fn walk_pages<T>(
    limit: usize,
    at_most: usize,
    order: fn(&T) -> (Timestamp, uuid::Uuid),
    fetch: impl AsyncFn(PageRequest) -> Vec<T>,
) -> Vec<T> {
    let mut walked = Vec::new();
    let mut page = first_page(limit);
    loop {
        let rows = fetch(page).await;
        assert!(
            rows.len() <= limit,
            "limit {limit}: got {} rows",
            rows.len()
        );
        let Some((created_at, id)) = rows.last().map(order) else {
            return walked;
        };
        walked.extend(rows);
        assert!(walked.len() <= at_most, "pages repeat rows");
        page = page_after(created_at, id, limit);
    }
}

fn ids(orgs: &[Organization]) -> Vec<String> {
    orgs.iter().map(|o| o.id.to_string()).collect()
}

fn key_ids(keys: &[ApiKey]) -> Vec<String> {
    keys.iter().map(|k| k.id.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// OrganizationStore::insert / find

/// What is inserted is found again, equal in every field: microsecond timestamps, metadata,
/// billing email, revision, and each status with its instant.
pub async fn organization_insert_then_find_round_trips_exactly(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let rich = rich_child_of(&parent, at(1));
    let suspended_child = suspended(&child_of(&parent, at(2)), at(3));
    let archived_child = archived(&rich_child_of(&parent, at(4)), at(5));
    for org in [&rich, &suspended_child, &archived_child] {
        insert_org(s, org).await;
    }
    for org in [&parent, &rich, &suspended_child, &archived_child] {
        assert_eq!(&stored_org(s, org).await, org);
    }
}

pub async fn organization_find_unknown_is_none(s: &Stores) {
    assert_eq!(s.organizations.find(organization_id()).await.unwrap(), None);
}

/// # Errors: `Duplicate` if an organization with that id exists — and the first one stays.
pub async fn organization_insert_same_id_is_duplicate(s: &Stores) {
    let first = top_level(at(0));
    insert_org(s, &first).await;
    let second = Organization {
        name: OrganizationName::parse("Someone else").unwrap(),
        created_at: at(99),
        ..first.clone()
    };
    let result = s.organizations.insert(&second, &Trail::none(), None).await;
    assert!(
        matches!(result, Err(StoreError::Duplicate(_))),
        "expected Duplicate, got {result:?}"
    );
    assert_eq!(stored_org(s, &first).await, first);
}

// ---------------------------------------------------------------------------------------------
// OrganizationStore::list_children

/// Children of one parent: several instants, several ties at one instant.
async fn children(s: &Stores, parent: &Organization, instants: &[i64]) -> Vec<Organization> {
    let mut stored = Vec::new();
    for &micros in instants {
        let child = child_of(parent, at(micros));
        insert_org(s, &child).await;
        stored.push(child);
    }
    stored
}

const INSTANTS: [i64; 9] = [50, 10, 30, 30, 30, 20, 40, 40, 60];

pub async fn list_children_newest_first_ties_by_id_descending(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let stored = children(s, &parent, &INSTANTS).await;
    let listed = s
        .organizations
        .list_children(parent.id, None, first_page(100))
        .await
        .unwrap();
    assert_eq!(ids(&listed), ids(&newest_first(&stored, org_order)));
    assert_eq!(listed, newest_first(&stored, org_order));
}

/// Walking the pages with the last item of each as the cursor yields every child exactly once,
/// in order; a page starts strictly after its cursor, also inside a run of ties.
pub async fn list_children_pages_strictly_after_the_cursor(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let stored = children(s, &parent, &INSTANTS).await;
    let expected = newest_first(&stored, org_order);

    for limit in [1, 2, 4] {
        let walked = walk_pages(limit, expected.len(), org_order, async |page| {
            s.organizations
                .list_children(parent.id, None, page)
                .await
                .unwrap()
        })
        .await;
        assert_eq!(ids(&walked), ids(&expected), "walking with limit {limit}");
    }

    // From every position, the rest is exactly what follows it.
    for (i, cursor) in expected.iter().enumerate() {
        let rest = s
            .organizations
            .list_children(
                parent.id,
                None,
                page_after(cursor.created_at, cursor.id.as_uuid(), 100),
            )
            .await
            .unwrap();
        assert_eq!(ids(&rest), ids(&expected[i + 1..]), "after item {i}");
    }

    // A cursor need not be a stored row: between instants, and past the oldest.
    let between = s
        .organizations
        .list_children(parent.id, None, page_after(at(35), uuid::Uuid::nil(), 100))
        .await
        .unwrap();
    let older: Vec<_> = expected
        .iter()
        .filter(|o| o.created_at < at(35))
        .cloned()
        .collect();
    assert_eq!(ids(&between), ids(&older));
    let past_the_end = s
        .organizations
        .list_children(parent.id, None, page_after(at(1), uuid::Uuid::max(), 100))
        .await
        .unwrap();
    assert!(past_the_end.is_empty(), "{past_the_end:?}");
}

/// Only direct children of that parent: not the parent, not other parents' children, not
/// other top-level organizations.
pub async fn list_children_only_direct_children(s: &Stores) {
    let parent = top_level(at(0));
    let other_parent = top_level(at(1));
    insert_org(s, &parent).await;
    insert_org(s, &other_parent).await;
    let mine = children(s, &parent, &[10, 20]).await;
    let theirs = children(s, &other_parent, &[15, 25]).await;
    insert_org(s, &top_level(at(30))).await;

    let listed = s
        .organizations
        .list_children(parent.id, None, first_page(100))
        .await
        .unwrap();
    assert_eq!(ids(&listed), ids(&newest_first(&mine, org_order)));
    let listed = s
        .organizations
        .list_children(other_parent.id, None, first_page(100))
        .await
        .unwrap();
    assert_eq!(ids(&listed), ids(&newest_first(&theirs, org_order)));

    // A child has no children; an unknown organization neither.
    for leaf in [mine[0].id, organization_id()] {
        let listed = s
            .organizations
            .list_children(leaf, None, first_page(100))
            .await
            .unwrap();
        assert!(listed.is_empty(), "{listed:?}");
    }
}

pub async fn list_children_filters_by_status(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let active = [child_of(&parent, at(10)), child_of(&parent, at(40))];
    let suspended_ones = [
        suspended(&child_of(&parent, at(20)), at(21)),
        suspended(&child_of(&parent, at(50)), at(51)),
    ];
    let archived_ones = [archived(&child_of(&parent, at(30)), at(31))];
    for org in active.iter().chain(&suspended_ones).chain(&archived_ones) {
        insert_org(s, org).await;
    }
    let cases: [(Option<StatusKind>, Vec<Organization>); 4] = [
        (Some(StatusKind::Active), active.to_vec()),
        (Some(StatusKind::Suspended), suspended_ones.to_vec()),
        (Some(StatusKind::Archived), archived_ones.to_vec()),
        (
            None,
            active
                .iter()
                .chain(&suspended_ones)
                .chain(&archived_ones)
                .cloned()
                .collect(),
        ),
    ];
    for (status, expected) in cases {
        let listed = s
            .organizations
            .list_children(parent.id, status, first_page(100))
            .await
            .unwrap();
        assert_eq!(
            listed,
            newest_first(&expected, org_order),
            "status {status:?}"
        );
    }

    // The filter and the cursor together.
    let first = s
        .organizations
        .list_children(parent.id, Some(StatusKind::Suspended), first_page(1))
        .await
        .unwrap();
    assert_eq!(ids(&first), vec![suspended_ones[1].id.to_string()]);
    let second = s
        .organizations
        .list_children(
            parent.id,
            Some(StatusKind::Suspended),
            page_after(first[0].created_at, first[0].id.as_uuid(), 1),
        )
        .await
        .unwrap();
    assert_eq!(ids(&second), vec![suspended_ones[0].id.to_string()]);
}

pub async fn list_children_respects_the_limit(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let stored = children(s, &parent, &[10, 20, 30, 40, 50]).await;
    let expected = newest_first(&stored, org_order);
    for limit in [0, 1, 3, 5, 6, 200] {
        let listed = s
            .organizations
            .list_children(parent.id, None, first_page(limit))
            .await
            .unwrap();
        let n = limit.min(expected.len());
        assert_eq!(ids(&listed), ids(&expected[..n]), "limit {limit}");
    }
}

// ---------------------------------------------------------------------------------------------
// OrganizationStore::update

pub async fn update_applies_when_the_revision_matches(s: &Stores) {
    let (_, child) = family(s).await;
    let changed = Organization {
        name: OrganizationName::parse("Renamed").unwrap(),
        metadata: metadata(&[("plan", "enterprise"), ("k", "v")]),
        billing_email: Some(BillingEmail::parse("billing@acme.example").unwrap()),
        updated_at: at(100),
        revision: child.revision.next(),
        ..child.clone()
    };
    assert_eq!(
        s.organizations
            .update(&changed, child.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(stored_org(s, &child).await, changed);

    // Through the lifecycle: suspend, then resume (clearing the instant), each from the last.
    let paused = suspended(&changed, at(200));
    assert_eq!(
        s.organizations
            .update(&paused, changed.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(stored_org(s, &child).await, paused);
    let resumed = Organization {
        status: OrganizationStatus::Active,
        billing_email: None,
        metadata: metadata(&[]),
        updated_at: at(300),
        revision: paused.revision.next(),
        ..paused.clone()
    };
    assert_eq!(
        s.organizations
            .update(&resumed, paused.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(stored_org(s, &child).await, resumed);
}

pub async fn update_is_stale_and_writes_nothing_when_the_revision_differs(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let child = rich_child_of(&parent, at(1)); // revision 7
    insert_org(s, &child).await;
    for expected in [Revision::INITIAL, Revision::new(6), Revision::new(8)] {
        let changed = Organization {
            name: OrganizationName::parse("Lost the race").unwrap(),
            updated_at: at(100),
            revision: expected.next(),
            ..suspended(&child, at(100))
        };
        assert_eq!(
            s.organizations
                .update(&changed, expected, &Trail::none(), None)
                .await
                .unwrap(),
            Write::Stale,
            "expected {expected:?}"
        );
        assert_eq!(stored_org(s, &child).await, child);
    }
}

/// With no stored organization there is no stored revision to match: `Stale`, nothing written.
pub async fn update_of_an_unknown_organization_is_stale(s: &Stores) {
    let ghost = top_level(at(0));
    let changed = Organization {
        revision: ghost.revision.next(),
        ..ghost.clone()
    };
    assert_eq!(
        s.organizations
            .update(&changed, ghost.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Stale
    );
    assert_eq!(s.organizations.find(ghost.id).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// OrganizationStore::archive

pub async fn archive_revokes_every_active_key_at_the_archive_instant(s: &Stores) {
    let (parent, child) = family(s).await;
    let active: Vec<ApiKey> = (0..3).map(|i| key_of(&child, at(20 + i))).collect();
    let revoked_before = revoked(&key_of(&child, at(30)), at(31));
    let parents_key = key_of(&parent, at(40));
    for key in active.iter().chain([&revoked_before, &parents_key]) {
        insert_key(s, key).await;
    }

    let archive_at = at(1_000);
    let gone = archived(&child, archive_at);
    assert_eq!(
        s.organizations
            .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
            .await
            .unwrap(),
        Archive::Applied {
            revoked_keys: 3,
            reclaimed_credits: 0
        }
    );
    assert_eq!(stored_org(s, &child).await, gone);
    for key in &active {
        assert_eq!(stored_key(s, key).await, revoked(key, archive_at));
    }
    // An already revoked key keeps its own instant; another organization's keys are untouched.
    assert_eq!(stored_key(s, &revoked_before).await, revoked_before);
    assert_eq!(stored_key(s, &parents_key).await, parents_key);
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 0);
    assert_eq!(
        s.api_keys.count_active(parent.id, later()).await.unwrap(),
        1
    );
}

pub async fn archive_of_a_suspended_organization_without_keys(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let child = suspended(&rich_child_of(&parent, at(1)), at(2));
    insert_org(s, &child).await;
    let gone = archived(&child, at(3));
    assert_eq!(
        s.organizations
            .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
            .await
            .unwrap(),
        Archive::Applied {
            revoked_keys: 0,
            reclaimed_credits: 0
        }
    );
    let stored = stored_org(s, &child).await;
    assert_eq!(stored, gone);
    assert_eq!(stored.status.suspended_since(), None);
}

pub async fn archive_is_stale_and_writes_nothing_when_the_revision_differs(s: &Stores) {
    let (_, child) = family(s).await;
    let keys: Vec<ApiKey> = (0..2).map(|i| key_of(&child, at(20 + i))).collect();
    for key in &keys {
        insert_key(s, key).await;
    }
    for expected in [Revision::new(2), Revision::new(0)] {
        let gone = Organization {
            revision: expected.next(),
            ..archived(&child, at(1_000))
        };
        assert_eq!(
            s.organizations
                .archive(&gone, expected, reclaim(), &Trail::none(), None)
                .await
                .unwrap(),
            Archive::Stale,
            "expected {expected:?}"
        );
    }
    assert_eq!(stored_org(s, &child).await, child);
    for key in &keys {
        assert_eq!(stored_key(s, key).await, *key);
    }
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 2);

    // An unknown organization: Stale as well.
    let ghost = top_level(at(0));
    assert_eq!(
        s.organizations
            .archive(
                &archived(&ghost, at(1)),
                ghost.revision,
                reclaim(),
                &Trail::none(),
                None,
            )
            .await
            .unwrap(),
        Archive::Stale
    );
    assert_eq!(s.organizations.find(ghost.id).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// ApiKeyStore::insert / find

pub async fn key_insert_then_find_round_trips_exactly(s: &Stores) {
    let (parent, child) = family(s).await;
    let plain = key_of(&child, at(20));
    let rich = rich_key_of(&parent, at(21));
    let already_revoked = revoked(&rich_key_of(&child, at(22)), at(23));
    for key in [&plain, &rich, &already_revoked] {
        insert_key(s, key).await;
    }
    for key in [&plain, &rich, &already_revoked] {
        assert_eq!(&stored_key(s, key).await, key);
    }
}

pub async fn key_find_unknown_is_none(s: &Stores) {
    assert_eq!(s.api_keys.find(key_id()).await.unwrap(), None);
}

/// # Errors: `Duplicate` if the id is taken; the first key stays as it was.
pub async fn key_insert_same_id_is_duplicate(s: &Stores) {
    let (_, child) = family(s).await;
    let first = key_of(&child, at(20));
    insert_key(s, &first).await;
    let same_id = ApiKey {
        id: first.id,
        ..rich_key_of(&child, at(30))
    };
    let result = s.api_keys.insert(&same_id, &Trail::none(), None).await;
    assert!(
        matches!(result, Err(StoreError::Duplicate(_))),
        "expected Duplicate, got {result:?}"
    );
    assert_eq!(stored_key(s, &first).await, first);
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 1);
}

/// # Errors: `Duplicate` if the handle is taken — by a key of any organization.
pub async fn key_insert_same_handle_is_duplicate(s: &Stores) {
    let (parent, child) = family(s).await;
    let first = key_of(&child, at(20));
    insert_key(s, &first).await;
    let same_handle = ApiKey {
        handle: first.handle.clone(),
        ..key_of(&parent, at(30))
    };
    let result = s.api_keys.insert(&same_handle, &Trail::none(), None).await;
    assert!(
        matches!(result, Err(StoreError::Duplicate(_))),
        "expected Duplicate, got {result:?}"
    );
    assert_eq!(s.api_keys.find(same_handle.id).await.unwrap(), None);
    let credentials = s
        .api_keys
        .find_credentials(&first.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.key, first);
}

pub async fn key_insert_into_an_archived_organization_is_refused(s: &Stores) {
    let (_, child) = family(s).await;
    let gone = archived(&child, at(100));
    assert!(matches!(
        s.organizations
            .archive(&gone, child.revision, reclaim(), &Trail::none(), None)
            .await
            .unwrap(),
        Archive::Applied { .. }
    ));
    let key = key_of(&child, at(200));
    assert_eq!(
        s.api_keys.insert(&key, &Trail::none(), None).await.unwrap(),
        KeyInsert::OrganizationClosed
    );
    assert_eq!(s.api_keys.find(key.id).await.unwrap(), None);
    assert_eq!(
        s.api_keys
            .find_credentials(&key.handle)
            .await
            .unwrap()
            .map(|c| c.key),
        None
    );
    assert!(s
        .api_keys
        .list(child.id, first_page(100))
        .await
        .unwrap()
        .is_empty());

    // Also an organization inserted archived.
    let parent = top_level(at(0));
    let born_archived = archived(&top_level(at(1)), at(2));
    insert_org(s, &parent).await;
    insert_org(s, &born_archived).await;
    let key = key_of(&born_archived, at(3));
    assert_eq!(
        s.api_keys.insert(&key, &Trail::none(), None).await.unwrap(),
        KeyInsert::OrganizationClosed
    );
    assert_eq!(s.api_keys.find(key.id).await.unwrap(), None);
}

pub async fn key_insert_into_a_missing_organization_is_refused(s: &Stores) {
    let ghost = top_level(at(0));
    let key = key_of(&ghost, at(1));
    assert_eq!(
        s.api_keys.insert(&key, &Trail::none(), None).await.unwrap(),
        KeyInsert::OrganizationClosed
    );
    assert_eq!(s.api_keys.find(key.id).await.unwrap(), None);
    assert_eq!(s.api_keys.count_active(ghost.id, later()).await.unwrap(), 0);
}

/// Only archived closes an organization: a suspended one still gets keys.
pub async fn key_insert_into_a_suspended_organization_is_accepted(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let child = suspended(&child_of(&parent, at(1)), at(2));
    insert_org(s, &child).await;
    let key = key_of(&child, at(3));
    insert_key(s, &key).await;
    assert_eq!(stored_key(s, &key).await, key);
}

// ---------------------------------------------------------------------------------------------
// ApiKeyStore::list

pub async fn key_list_newest_first_paged_and_only_that_organization(s: &Stores) {
    let (parent, child) = family(s).await;
    let mut keys = Vec::new();
    for (i, micros) in INSTANTS.iter().enumerate() {
        let key = if i % 3 == 0 {
            revoked(&key_of(&child, at(*micros)), at(500))
        } else {
            key_of(&child, at(*micros))
        };
        insert_key(s, &key).await;
        keys.push(key);
    }
    insert_key(s, &key_of(&parent, at(45))).await;
    let expected = newest_first(&keys, key_order);

    let all = s.api_keys.list(child.id, first_page(100)).await.unwrap();
    assert_eq!(all, expected, "every key, revoked ones too, newest first");

    for limit in [1, 2, 4] {
        let walked = walk_pages(limit, expected.len(), key_order, async |page| {
            s.api_keys.list(child.id, page).await.unwrap()
        })
        .await;
        assert_eq!(key_ids(&walked), key_ids(&expected), "limit {limit}");
    }
    for (i, cursor) in expected.iter().enumerate() {
        let rest = s
            .api_keys
            .list(
                child.id,
                page_after(cursor.created_at, cursor.id.as_uuid(), 100),
            )
            .await
            .unwrap();
        assert_eq!(key_ids(&rest), key_ids(&expected[i + 1..]), "after key {i}");
    }
    assert!(s
        .api_keys
        .list(child.id, first_page(0))
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .api_keys
        .list(organization_id(), first_page(100))
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// ApiKeyStore::revoke / count_active

pub async fn revoke_revokes_an_active_key_at_the_instant(s: &Stores) {
    let (_, child) = family(s).await;
    let key = rich_key_of(&child, at(20));
    let other = key_of(&child, at(21));
    insert_key(s, &key).await;
    insert_key(s, &other).await;
    let answer = s
        .api_keys
        .revoke(key.id, at(100), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(answer, Some(revoked(&key, at(100))));
    assert_eq!(stored_key(s, &key).await, revoked(&key, at(100)));
    assert_eq!(stored_key(s, &other).await, other);
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 1);
}

/// A key already revoked is returned unchanged, with its first instant.
pub async fn revoke_is_idempotent(s: &Stores) {
    let (_, child) = family(s).await;
    let key = key_of(&child, at(20));
    insert_key(s, &key).await;
    let first = s
        .api_keys
        .revoke(key.id, at(100), &Trail::none(), None)
        .await
        .unwrap();
    let second = s
        .api_keys
        .revoke(key.id, at(200), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(first, Some(revoked(&key, at(100))));
    assert_eq!(second, first);
    assert_eq!(stored_key(s, &key).await, revoked(&key, at(100)));

    let born_revoked = revoked(&key_of(&child, at(30)), at(31));
    insert_key(s, &born_revoked).await;
    assert_eq!(
        s.api_keys
            .revoke(born_revoked.id, at(300), &Trail::none(), None)
            .await
            .unwrap(),
        Some(born_revoked)
    );
}

pub async fn revoke_of_an_unknown_key_is_none(s: &Stores) {
    assert_eq!(
        s.api_keys
            .revoke(key_id(), at(1), &Trail::none(), None)
            .await
            .unwrap(),
        None
    );
}

pub async fn count_active_counts_only_active_keys_of_the_organization(s: &Stores) {
    let (parent, child) = family(s).await;
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 0);
    let keys: Vec<ApiKey> = (0..4).map(|i| key_of(&child, at(20 + i))).collect();
    for key in &keys {
        insert_key(s, key).await;
    }
    insert_key(s, &revoked(&key_of(&child, at(30)), at(31))).await;
    insert_key(s, &key_of(&parent, at(32))).await;
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 4);
    s.api_keys
        .revoke(keys[0].id, at(40), &Trail::none(), None)
        .await
        .unwrap();
    s.api_keys
        .revoke(keys[0].id, at(41), &Trail::none(), None)
        .await
        .unwrap();
    s.api_keys
        .revoke(keys[1].id, at(42), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 2);
    assert_eq!(
        s.api_keys.count_active(parent.id, later()).await.unwrap(),
        1
    );
    assert_eq!(
        s.api_keys
            .count_active(organization_id(), later())
            .await
            .unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// ApiKeyStore::find_credentials

pub async fn find_credentials_of_a_child_key_has_organization_and_parent(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    let child = rich_child_of(&parent, at(1));
    insert_org(s, &child).await;
    let sibling = child_of(&parent, at(2));
    insert_org(s, &sibling).await;
    let key = rich_key_of(&child, at(3));
    insert_key(s, &key).await;
    insert_key(s, &key_of(&sibling, at(4))).await;

    let credentials = s
        .api_keys
        .find_credentials(&key.handle)
        .await
        .unwrap()
        .expect("credentials of a stored key");
    assert_eq!(credentials.key, key);
    assert_eq!(credentials.organization, child);
    assert_eq!(credentials.parent, Some(parent));
}

pub async fn find_credentials_of_a_top_level_key_has_no_parent(s: &Stores) {
    let (parent, _) = family(s).await;
    let key = key_of(&parent, at(20));
    insert_key(s, &key).await;
    let credentials = s
        .api_keys
        .find_credentials(&key.handle)
        .await
        .unwrap()
        .expect("credentials of a stored key");
    assert_eq!(credentials.key, key);
    assert_eq!(credentials.organization, parent);
    assert_eq!(credentials.parent, None);
}

pub async fn find_credentials_of_an_unknown_handle_is_none(s: &Stores) {
    let (_, child) = family(s).await;
    insert_key(s, &key_of(&child, at(20))).await;
    let found = s.api_keys.find_credentials(&handle()).await.unwrap();
    assert!(found.is_none(), "{found:?}");
}

/// Every committed change is seen by the next read: suspension of the organization or of its
/// parent, revocation, archive — no stale copy.
pub async fn find_credentials_reads_the_current_state(s: &Stores) {
    let (parent, child) = family(s).await;
    let key = key_of(&child, at(20));
    insert_key(s, &key).await;
    let read = || async {
        s.api_keys
            .find_credentials(&key.handle)
            .await
            .unwrap()
            .unwrap()
    };
    // Warm any cache a store might (wrongly) keep.
    assert_eq!(read().await.organization, child);

    let child_paused = suspended(&child, at(30));
    assert_eq!(
        s.organizations
            .update(&child_paused, child.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(read().await.organization, child_paused);

    let parent_paused = suspended(&parent, at(31));
    assert_eq!(
        s.organizations
            .update(&parent_paused, parent.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(read().await.parent, Some(parent_paused));

    let child_resumed = Organization {
        status: OrganizationStatus::Active,
        updated_at: at(32),
        revision: child_paused.revision.next(),
        ..child_paused.clone()
    };
    assert_eq!(
        s.organizations
            .update(&child_resumed, child_paused.revision, &Trail::none(), None)
            .await
            .unwrap(),
        Write::Applied
    );
    assert_eq!(read().await.organization, child_resumed);

    s.api_keys
        .revoke(key.id, at(40), &Trail::none(), None)
        .await
        .unwrap();
    assert_eq!(read().await.key.status, KeyStatus::Revoked { at: at(40) });

    let other = key_of(&child, at(50));
    insert_key(s, &other).await;
    let gone = archived(&child_resumed, at(60));
    s.organizations
        .archive(
            &gone,
            child_resumed.revision,
            reclaim(),
            &Trail::none(),
            None,
        )
        .await
        .unwrap();
    let after = s
        .api_keys
        .find_credentials(&other.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.organization, gone);
    assert_eq!(after.key, revoked(&other, at(60)));
}

// ---------------------------------------------------------------------------------------------
// Races (run on a multi-thread runtime)

const RACERS: usize = 16;

/// Many writers from one read: exactly one wins, the rest are told `Stale`, and the store holds
/// the winner's organization.
pub async fn concurrent_updates_from_one_revision_apply_exactly_once(s: &Stores) {
    let (_, child) = family(s).await;
    for round in 0..3u64 {
        let current = stored_org(s, &child).await;
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let organizations = s.organizations.clone();
            let barrier = barrier.clone();
            let next = Organization {
                name: OrganizationName::parse(&format!("writer {round}-{i}")).unwrap(),
                updated_at: at(1_000 * (round as i64 + 1) + i as i64),
                revision: current.revision.next(),
                ..current.clone()
            };
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let outcome = organizations
                    .update(&next, current.revision, &Trail::none(), None)
                    .await;
                (next, outcome)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (next, outcome) = task.await.unwrap();
            match outcome.unwrap() {
                Write::Applied => winners.push(next),
                Write::Stale => {}
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} writers won",
            winners.len()
        );
        assert_eq!(stored_org(s, &child).await, winners[0]);
    }
}

pub async fn concurrent_archives_from_one_revision_apply_exactly_once(s: &Stores) {
    let (_, child) = family(s).await;
    let keys: Vec<ApiKey> = (0..3).map(|i| key_of(&child, at(20 + i))).collect();
    for key in &keys {
        insert_key(s, key).await;
    }
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let organizations = s.organizations.clone();
        let barrier = barrier.clone();
        let gone = archived(&child, at(1_000 + i as i64));
        let expected = child.revision;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = organizations
                .archive(&gone, expected, reclaim(), &Trail::none(), None)
                .await;
            (gone, outcome)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (gone, outcome) = task.await.unwrap();
        match outcome.unwrap() {
            Archive::Applied { revoked_keys, .. } => winners.push((gone, revoked_keys)),
            Archive::Stale => {}
        }
    }
    assert_eq!(winners.len(), 1, "{} archives won", winners.len());
    let (gone, revoked_keys) = &winners[0];
    assert_eq!(*revoked_keys, 3);
    assert_eq!(&stored_org(s, &child).await, gone);
    let archived_at = gone.status.archived_at().unwrap();
    for key in &keys {
        assert_eq!(stored_key(s, key).await, revoked(key, archived_at));
    }
}

/// Archive racing many key inserts: every key is either inserted before the archive (and revoked
/// by it, at the archive instant, counted in `revoked_keys`) or refused — never a live key in an
/// archived organization.
pub async fn archive_racing_key_inserts_leaves_no_live_key(s: &Stores) {
    let parent = top_level(at(0));
    insert_org(s, &parent).await;
    for round in 0..4i64 {
        let child = child_of(&parent, at(10 + round));
        insert_org(s, &child).await;
        let existing = key_of(&child, at(20));
        insert_key(s, &existing).await;

        let barrier = Arc::new(Barrier::new(RACERS + 1));
        let mut inserts = Vec::new();
        for i in 0..RACERS {
            let api_keys = s.api_keys.clone();
            let barrier = barrier.clone();
            let key = key_of(&child, at(100 + i as i64));
            inserts.push(tokio::spawn(async move {
                barrier.wait().await;
                // Stagger a little so inserts land before, during and after the archive.
                for _ in 0..(i % 4) {
                    tokio::task::yield_now().await;
                }
                let outcome = api_keys.insert(&key, &Trail::none(), None).await;
                (key, outcome)
            }));
        }
        let gone = archived(&child, at(5_000 + round));
        let archive = {
            let organizations = s.organizations.clone();
            let barrier = barrier.clone();
            let gone = gone.clone();
            let expected = child.revision;
            tokio::spawn(async move {
                barrier.wait().await;
                organizations
                    .archive(&gone, expected, reclaim(), &Trail::none(), None)
                    .await
            })
        };

        let revoked_keys = match archive.await.unwrap().unwrap() {
            Archive::Applied { revoked_keys, .. } => revoked_keys,
            Archive::Stale => panic!("round {round}: the only archive was Stale"),
        };
        let mut inserted = vec![existing.clone()];
        for task in inserts {
            let (key, outcome) = task.await.unwrap();
            match outcome.unwrap() {
                KeyInsert::Inserted => inserted.push(key),
                KeyInsert::OrganizationClosed => {
                    assert_eq!(
                        s.api_keys.find(key.id).await.unwrap(),
                        None,
                        "refused key stored"
                    );
                }
            }
        }
        let archived_at = gone.status.archived_at().unwrap();
        for key in &inserted {
            assert_eq!(
                stored_key(s, key).await,
                revoked(key, archived_at),
                "round {round}: a key inserted before the archive must be revoked by it"
            );
        }
        assert_eq!(revoked_keys, inserted.len() as u64, "round {round}");
        assert_eq!(s.api_keys.count_active(child.id, later()).await.unwrap(), 0);
        let listed = s.api_keys.list(child.id, first_page(1_000)).await.unwrap();
        assert_eq!(listed.len(), inserted.len());
        assert!(
            listed.iter().all(|k| !k.is_usable_at(later())),
            "{listed:?}"
        );
        // And after the archive, every insert is refused.
        assert_eq!(
            s.api_keys
                .insert(&key_of(&child, at(9_000)), &Trail::none(), None)
                .await
                .unwrap(),
            KeyInsert::OrganizationClosed
        );
    }
}
