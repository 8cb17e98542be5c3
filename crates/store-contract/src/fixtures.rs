//! Builders of domain values for the contract cases, made with the domain's own constructors.
//! Every id and handle is random, so cases never collide even on a shared store.

use std::collections::BTreeMap;

use domain::api_key::{
    ApiKey, KeyEnv, KeyHandle, KeyName, KeyStatus, RateLimitTier, Scope, Scopes, SecretHash,
};
use domain::organization::{
    BillingEmail, Metadata, Organization, OrganizationName, OrganizationStatus, Revision,
};
use domain::pagination::{PageCursor, PageRequest};
use domain::{ApiKeyId, OrganizationId, Timestamp};
use uuid::Uuid;

/// An instant `micros` microseconds after a fixed origin in 2026, with sub-millisecond digits so
/// that a store dropping precision is caught.
pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_780_000_000_123_457 + micros).unwrap()
}

/// An instant after every other one the cases use: for reads "as of now".
pub fn later() -> Timestamp {
    at(10_000_000_000)
}

pub fn organization_id() -> OrganizationId {
    OrganizationId::from_uuid(Uuid::new_v4())
}

pub fn key_id() -> ApiKeyId {
    ApiKeyId::from_uuid(Uuid::new_v4())
}

/// A random, valid key handle.
pub fn handle() -> KeyHandle {
    let bytes = *Uuid::new_v4().as_bytes();
    let mut ten = [0u8; 10];
    ten.copy_from_slice(&bytes[..10]);
    KeyHandle::from_random(ten)
}

pub fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Metadata::from_input(map).unwrap()
}

/// An active top-level organization created at `created_at`.
pub fn top_level(created_at: Timestamp) -> Organization {
    Organization {
        id: organization_id(),
        parent_id: None,
        name: OrganizationName::parse("Partner Inc.").unwrap(),
        status: OrganizationStatus::Active,
        metadata: Metadata::default(),
        billing_email: None,
        created_at,
        updated_at: created_at,
        revision: Revision::INITIAL,
    }
}

/// An active child of `parent` created at `created_at`.
pub fn child_of(parent: &Organization, created_at: Timestamp) -> Organization {
    Organization {
        parent_id: Some(parent.id),
        name: OrganizationName::parse("Acme Coffee").unwrap(),
        ..top_level(created_at)
    }
}

/// A child with every optional field set and a revision past the first.
pub fn rich_child_of(parent: &Organization, created_at: Timestamp) -> Organization {
    Organization {
        name: OrganizationName::parse("  Café Ünïcode — 東京 ☕  ").unwrap(),
        metadata: metadata(&[
            ("externalId", "cust_12345"),
            ("plan", "growth"),
            ("quote\"and\\slash", "line\nbreak \u{1F600}"),
        ]),
        billing_email: Some(BillingEmail::parse("ops@acme.example").unwrap()),
        updated_at: created_at.plus(time::Duration::microseconds(1_234_567)),
        revision: Revision::new(7),
        ..child_of(parent, created_at)
    }
}

/// `org` suspended at `since` (one revision on).
pub fn suspended(org: &Organization, since: Timestamp) -> Organization {
    Organization {
        status: OrganizationStatus::Suspended { since },
        updated_at: since,
        revision: org.revision.next(),
        ..org.clone()
    }
}

/// `org` (suspended) resumed at `at`, one revision on.
pub fn resumed(org: &Organization, at: Timestamp) -> Organization {
    Organization {
        status: OrganizationStatus::Active,
        updated_at: at,
        revision: org.revision.next(),
        ..org.clone()
    }
}

/// `org` archived at `at` (one revision on): what a use case hands to `archive`.
pub fn archived(org: &Organization, at: Timestamp) -> Organization {
    Organization {
        status: OrganizationStatus::Archived { at },
        updated_at: at,
        revision: org.revision.next(),
        ..org.clone()
    }
}

/// An active live key of `org` created at `created_at`, with a fresh id and handle.
pub fn key_of(org: &Organization, created_at: Timestamp) -> ApiKey {
    let handle = handle();
    ApiKey {
        id: key_id(),
        organization_id: org.id,
        name: KeyName::parse("content-sync").unwrap(),
        env: KeyEnv::Live,
        secret_hash: SecretHash::of(&format!("secret-of-{}", handle.as_str())),
        handle,
        scopes: Scopes::new([Scope::CreditsRead]),
        rate_limit_tier: RateLimitTier::Standard,
        status: KeyStatus::Active,
        created_at,
        last_used_at: None,
        rotated_at: None,
        superseded: None,
    }
}

/// A key with every field away from its default: test env, several scopes in a non-sorted
/// order, another tier, a last use.
pub fn rich_key_of(org: &Organization, created_at: Timestamp) -> ApiKey {
    ApiKey {
        name: KeyName::parse("  ключ — sync ✓ ").unwrap(),
        env: KeyEnv::Test,
        scopes: Scopes::new([
            Scope::WebhooksWrite,
            Scope::CreditsRead,
            Scope::AllData,
            Scope::AuditRead,
        ]),
        rate_limit_tier: RateLimitTier::Sandbox,
        secret_hash: SecretHash::from_bytes([0xa5; 32]),
        last_used_at: Some(created_at.plus(time::Duration::microseconds(987_654))),
        rotated_at: Some(created_at.plus(time::Duration::microseconds(3))),
        ..key_of(org, created_at)
    }
}

/// `key` revoked at `at`.
pub fn revoked(key: &ApiKey, at: Timestamp) -> ApiKey {
    ApiKey {
        status: KeyStatus::Revoked { at },
        ..key.clone()
    }
}

pub fn first_page(limit: usize) -> PageRequest {
    PageRequest { after: None, limit }
}

pub fn page_after(created_at: Timestamp, id: Uuid, limit: usize) -> PageRequest {
    PageRequest {
        after: Some(PageCursor { created_at, id }),
        limit,
    }
}

/// Sorts newest first by `(created_at, id)` descending: the order every list promises.
pub fn newest_first<T: Clone>(items: &[T], key: impl Fn(&T) -> (Timestamp, Uuid)) -> Vec<T> {
    let mut sorted = items.to_vec();
    sorted.sort_by_key(|item| std::cmp::Reverse(key(item)));
    sorted
}

/// Fresh ids for the reclaim events of an archive.
pub fn reclaim() -> domain::ports::Reclaim {
    let random = |n: u8| {
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&Uuid::new_v4().as_bytes()[..10]);
        bytes[0] ^= n;
        bytes
    };
    domain::ports::Reclaim {
        child_event: domain::credits::LedgerEventId::new(at(0), random(1)),
        parent_event: domain::credits::LedgerEventId::new(at(0), random(2)),
        transfer_id: domain::credits::TransferId::from_uuid(Uuid::new_v4()),
    }
}

/// Stores a top-level organization created at `at(0)` and its child created at `child_at`.
pub async fn family_at(s: &crate::Stores, child_at: Timestamp) -> (Organization, Organization) {
    let parent = top_level(at(0));
    let child = child_of(&parent, child_at);
    for org in [&parent, &child] {
        s.organizations
            .insert(org, &domain::trail::Trail::none(), None)
            .await
            .unwrap();
    }
    (parent, child)
}
