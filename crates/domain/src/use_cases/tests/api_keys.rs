use crate::error::ConflictSubject;
use futures_executor::block_on;

use crate::api_key::{KeyEnv, RateLimitTier, Scope};
use crate::error::Resource;
use crate::organization::{OrganizationStatus, StatusKind};
use crate::ports::KeyInsert;
use crate::use_cases::test_support::*;
use crate::use_cases::NewApiKey;
use crate::DomainError;

fn request(scopes: &[&str]) -> NewApiKey {
    NewApiKey {
        name: "acme-content-sync".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        env: None,
    }
}

#[test]
fn mint_stores_a_hash_and_shows_the_secret_once() {
    let principal = admin();
    let child = org(Some(principal.organization.id), OrganizationStatus::Active);
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks
        .api_keys
        .expect_insert()
        .times(1)
        .returning(|_, _, _| Ok(KeyInsert::Inserted));
    let minted = block_on(mocks.control_plane().mint_api_key(
        &principal,
        child.id,
        NewApiKey {
            env: Some("test".into()),
            ..request(&["credits:read", "keys:read"])
        },
        None,
    ))
    .unwrap();
    assert_eq!(minted.key.organization_id, child.id);
    assert_eq!(minted.key.env, KeyEnv::Test);
    assert_eq!(minted.key.rate_limit_tier, RateLimitTier::Sandbox);
    assert!(minted.secret.reveal().starts_with(&minted.key.prefix()));
    let secret_part = &minted.secret.reveal()[minted.key.prefix().len() + 1..];
    assert!(minted.key.secret_hash.matches(secret_part));
}

#[test]
fn org_admin_or_a_scope_the_caller_lacks_is_forbidden() {
    let narrow = partner(&[Scope::OrgAdmin, Scope::CreditsRead]);
    let cp = Mocks::new().control_plane();
    let id = org(Some(narrow.organization.id), OrganizationStatus::Active).id;
    for (scopes, denied) in [
        (&["org:admin"][..], Scope::OrgAdmin),
        (&["credits:read", "keys:write"][..], Scope::KeysWrite),
        (&["*"][..], Scope::AllData),
    ] {
        let result = block_on(cp.mint_api_key(&narrow, id, request(scopes), None));
        assert!(
            matches!(result, Err(DomainError::ForbiddenScope { required }) if required == denied),
            "{scopes:?}"
        );
    }
}

#[test]
fn unknown_or_empty_scopes_and_bad_env_are_invalid() {
    let principal = admin();
    let cp = Mocks::new().control_plane();
    let id = org(Some(principal.organization.id), OrganizationStatus::Active).id;
    for input in [
        request(&[]),
        request(&["credits:admin"]),
        NewApiKey {
            env: Some("prod".into()),
            ..request(&["*"])
        },
        NewApiKey {
            name: "".into(),
            ..request(&["*"])
        },
    ] {
        let result = block_on(cp.mint_api_key(&principal, id, input.clone(), None));
        assert!(
            matches!(result, Err(DomainError::Validation(_))),
            "{input:?}"
        );
    }
}

#[test]
fn minting_for_an_archived_child_is_a_conflict_even_when_archived_mid_way() {
    let principal = admin();
    let archived = org(
        Some(principal.organization.id),
        OrganizationStatus::Archived { at: at(1) },
    );
    let mut mocks = Mocks::new();
    let found = archived.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks.api_keys.expect_insert().never();
    let result = block_on(mocks.control_plane().mint_api_key(
        &principal,
        archived.id,
        request(&["*"]),
        None,
    ));
    assert!(matches!(
        result,
        Err(DomainError::Conflict {
            subject: ConflictSubject::Organization {
                status: StatusKind::Archived,
                ..
            },
            ..
        })
    ));

    // Active when read, archived by the time the key is inserted: the store refuses it.
    let active = org(Some(principal.organization.id), OrganizationStatus::Active);
    let mut mocks = Mocks::new();
    let mut seq = mockall::Sequence::new();
    let (first, then) = (
        active.clone(),
        Organization {
            status: OrganizationStatus::Archived { at: at(2) },
            ..active.clone()
        },
    );
    mocks
        .organizations
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(first.clone())));
    mocks
        .api_keys
        .expect_insert()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(KeyInsert::OrganizationClosed));
    mocks
        .organizations
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(then.clone())));
    let result = block_on(mocks.control_plane().mint_api_key(
        &principal,
        active.id,
        request(&["*"]),
        None,
    ));
    assert!(matches!(
        result,
        Err(DomainError::Conflict {
            subject: ConflictSubject::Organization {
                status: StatusKind::Archived,
                ..
            },
            ..
        })
    ));
}

use crate::organization::Organization;

#[test]
fn revoking_another_organizations_key_is_not_found() {
    let principal = admin();
    let child = org(Some(principal.organization.id), OrganizationStatus::Active);
    let stranger = org(Some(principal.organization.id), OrganizationStatus::Active);
    let (strangers_key, _) = key(&stranger, &[Scope::AllData]);
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    let k = strangers_key.clone();
    mocks
        .api_keys
        .expect_find()
        .returning(move |_| Ok(Some(k.clone())));
    mocks.api_keys.expect_revoke().never();
    let result = block_on(mocks.control_plane().revoke_api_key(
        &principal,
        child.id,
        strangers_key.id,
        None,
    ));
    assert!(matches!(
        result,
        Err(DomainError::NotFound(Resource::ApiKey))
    ));
}
