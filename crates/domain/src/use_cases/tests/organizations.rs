use crate::audit::AuditEventType;
use crate::error::ConflictSubject;
use crate::webhooks::EventType;
use std::collections::BTreeMap;

use futures_executor::block_on;
use mockall::predicate::{always, eq};

use crate::api_key::Scope;
use crate::error::Resource;
use crate::organization::{MetadataPatch, OrganizationStatus, StatusKind};
use crate::pagination::PageRequest;
use crate::ports::{Archive, Write};
use crate::use_cases::test_support::*;
use crate::use_cases::{NewOrganization, OrganizationPatch};
use crate::DomainError;

#[test]
fn create_makes_an_active_child_of_the_caller() {
    let principal = admin();
    let mut mocks = Mocks::new();
    let parent = principal.organization.id;
    mocks
        .organizations
        .expect_insert()
        .withf(move |org, trail, _| {
            org.parent_id == Some(parent)
                && org.status == OrganizationStatus::Active
                && trail.audit.len() == 1
                && trail.audit[0].event_type == AuditEventType::OrganizationCreated
                && trail.audit[0].organization_id == org.id
                && trail.events.len() == 1
                && trail.events[0].event_type == EventType::OrganizationCreated
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let input = NewOrganization {
        name: "  Acme Coffee ".into(),
        metadata: BTreeMap::from([("plan".into(), "growth".into())]),
        billing_email: Some("ops@acme.example".into()),
    };
    let org = block_on(
        mocks
            .control_plane()
            .create_organization(&principal, input, None),
    )
    .unwrap();
    assert_eq!(org.name.as_str(), "Acme Coffee");
    assert_eq!(org.created_at, at(NOW));
    assert_eq!(org.updated_at, at(NOW));
    assert_eq!(
        org.metadata.pairs().get("plan").map(String::as_str),
        Some("growth")
    );
}

#[test]
fn create_reports_every_invalid_field_and_writes_nothing() {
    let mut mocks = Mocks::new();
    mocks.organizations.expect_insert().never();
    let input = NewOrganization {
        name: " ".into(),
        metadata: BTreeMap::from([("k".repeat(41), "v".into())]),
        billing_email: Some("nope".into()),
    };
    let Err(DomainError::Validation(fields)) = block_on(mocks.control_plane().create_organization(
        &admin(),
        input,
        None,
    )) else {
        panic!("expected a validation error");
    };
    let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"name") && names.contains(&"billingEmail"));
}

#[test]
fn a_child_cannot_create_children() {
    let mut principal = admin();
    principal.organization.parent_id = Some(crate::OrganizationId::from_uuid(uuid::Uuid::new_v4()));
    let mut mocks = Mocks::new();
    mocks.organizations.expect_insert().never();
    let result = block_on(mocks.control_plane().create_organization(
        &principal,
        NewOrganization {
            name: "x".into(),
            ..Default::default()
        },
        None,
    ));
    assert!(matches!(result, Err(DomainError::Validation(_))));
}

#[test]
fn every_control_plane_use_case_needs_org_admin() {
    let principal = partner(&[Scope::AllData]);
    let id = org(None, OrganizationStatus::Active).id;
    // No expectations: any port call would panic.
    let cp = Mocks::new().control_plane();
    let forbidden = |r: Result<(), DomainError>| {
        matches!(
            r,
            Err(DomainError::ForbiddenScope {
                required: Scope::OrgAdmin
            })
        )
    };
    assert!(forbidden(
        block_on(cp.create_organization(&principal, NewOrganization::default(), None)).map(drop)
    ));
    assert!(forbidden(
        block_on(cp.list_organizations(
            &principal,
            None,
            PageRequest {
                after: None,
                limit: 5
            }
        ))
        .map(drop)
    ));
    assert!(forbidden(
        block_on(cp.suspend_organization(&principal, id, None, None)).map(drop)
    ));
    assert!(forbidden(
        block_on(cp.resume_organization(&principal, id, None)).map(drop)
    ));
    assert!(forbidden(
        block_on(cp.archive_organization(&principal, id, None)).map(drop)
    ));
    assert!(forbidden(
        block_on(cp.update_organization(&principal, id, OrganizationPatch::default(), None))
            .map(drop)
    ));
}

#[test]
fn suspend_moves_an_active_child_to_suspended_now() {
    let principal = admin();
    let child = org(Some(principal.organization.id), OrganizationStatus::Active);
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .with(eq(child.id))
        .returning(move |_| Ok(Some(found.clone())));
    mocks
        .organizations
        .expect_update()
        .withf(move |org, expected, trail, _| {
            org.status == OrganizationStatus::Suspended { since: at(NOW) }
                && org.updated_at == at(NOW)
                && org.revision == expected.next()
                && one_transition(trail, AuditEventType::OrganizationSuspended, "unpaid")
                && trail.events.len() == 1
                && trail.events[0].event_type == EventType::OrganizationSuspended
                && trail.events[0].organization_id == org.id
        })
        .times(1)
        .returning(|_, _, _, _| Ok(Write::Applied));
    let suspended = block_on(mocks.control_plane().suspend_organization(
        &principal,
        child.id,
        Some("unpaid".into()),
        None,
    ))
    .unwrap();
    assert_eq!(suspended.status.kind(), StatusKind::Suspended);
}

#[test]
fn no_ops_return_the_current_state_and_write_nothing() {
    let principal = admin();
    for (status, action) in [
        (OrganizationStatus::Suspended { since: at(1) }, "suspend"),
        (OrganizationStatus::Active, "resume"),
    ] {
        let child = org(Some(principal.organization.id), status);
        let mut mocks = Mocks::new();
        let found = child.clone();
        mocks
            .organizations
            .expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        mocks.organizations.expect_update().never();
        let cp = mocks.control_plane();
        let result = match action {
            "suspend" => block_on(cp.suspend_organization(&principal, child.id, None, None)),
            _ => block_on(cp.resume_organization(&principal, child.id, None)),
        };
        assert_eq!(result.unwrap(), child, "{action}");
    }
}

#[test]
fn suspending_or_resuming_an_archived_child_is_a_conflict() {
    let principal = admin();
    let child = org(
        Some(principal.organization.id),
        OrganizationStatus::Archived { at: at(1) },
    );
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks.organizations.expect_update().never();
    let cp = mocks.control_plane();
    for result in [
        block_on(cp.suspend_organization(&principal, child.id, None, None)),
        block_on(cp.resume_organization(&principal, child.id, None)),
    ] {
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
}

#[test]
fn anything_but_a_direct_child_is_not_found() {
    let principal = admin();
    let sibling_parent = org(None, OrganizationStatus::Active);
    let other_partners_child = org(Some(sibling_parent.id), OrganizationStatus::Active);
    let itself = principal.organization.clone();
    for target in [other_partners_child, itself] {
        let mut mocks = Mocks::new();
        let found = target.clone();
        mocks
            .organizations
            .expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        let result = block_on(
            mocks
                .control_plane()
                .suspend_organization(&principal, target.id, None, None),
        );
        assert!(matches!(
            result,
            Err(DomainError::NotFound(Resource::Organization))
        ));
    }
}

#[test]
fn a_lost_race_is_retried_on_fresh_state() {
    let principal = admin();
    let child = org(Some(principal.organization.id), OrganizationStatus::Active);
    let mut mocks = Mocks::new();
    let mut seq = mockall::Sequence::new();
    let first = child.clone();
    mocks
        .organizations
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(first.clone())));
    mocks
        .organizations
        .expect_update()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(Write::Stale));
    // Meanwhile another writer suspended it: the retry finds a no-op.
    let mut concurrently = child.clone();
    concurrently.status = OrganizationStatus::Suspended { since: at(7) };
    concurrently.revision = child.revision.next();
    let second = concurrently.clone();
    mocks
        .organizations
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(second.clone())));
    let result = block_on(
        mocks
            .control_plane()
            .suspend_organization(&principal, child.id, None, None),
    )
    .unwrap();
    assert_eq!(result, concurrently);
}

#[test]
fn archive_revokes_keys_atomically_and_again_reports_zeros() {
    let principal = admin();
    let child = org(
        Some(principal.organization.id),
        OrganizationStatus::Suspended { since: at(1) },
    );
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks
        .organizations
        .expect_archive()
        .withf(|org, _, _, trail, _| {
            // What the sweep moved is audited on the child once the store knows the amount.
            let swept = trail.resolved(300);
            org.status == OrganizationStatus::Archived { at: at(NOW) }
                && trail.audit.len() == 1
                && trail.audit[0].event_type == AuditEventType::OrganizationArchived
                && trail.resolved(0).audit.len() == 1
                && swept.audit.len() == 2
                && swept.audit[1].event_type == AuditEventType::CreditsReclaimed
                && swept.events.len() == 2
                && swept.events[1].event_type == EventType::CreditsReclaimed
        })
        .times(1)
        .returning(|_, _, _, _, _| {
            Ok(Archive::Applied {
                revoked_keys: 2,
                reclaimed_credits: 300,
            })
        });
    let report = block_on(
        mocks
            .control_plane()
            .archive_organization(&principal, child.id, None),
    )
    .unwrap();
    assert_eq!(
        (report.revoked_api_keys, report.reclaimed_credits),
        (2, 300)
    );
    assert_eq!(report.organization.status.archived_at(), Some(at(NOW)));

    let archived = report.organization;
    let mut mocks = Mocks::new();
    let found = archived.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks.organizations.expect_archive().never();
    let again = block_on(
        mocks
            .control_plane()
            .archive_organization(&principal, archived.id, None),
    )
    .unwrap();
    assert_eq!((again.revoked_api_keys, again.reclaimed_credits), (0, 0));
    assert_eq!(again.organization.status.archived_at(), Some(at(NOW)));
}

#[test]
fn patch_merges_metadata_and_a_patch_that_changes_nothing_writes_nothing() {
    let principal = admin();
    let mut child = org(Some(principal.organization.id), OrganizationStatus::Active);
    child.metadata =
        crate::organization::Metadata::from_input(BTreeMap::from([("a".into(), "1".into())]))
            .unwrap();
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks
        .organizations
        .expect_update()
        .with(always(), eq(child.revision), always(), always())
        .times(1)
        .returning(|_, _, _, _| Ok(Write::Applied));
    let cp = mocks.control_plane();
    let patch = OrganizationPatch {
        metadata: Some(MetadataPatch::Merge(BTreeMap::from([(
            "b".into(),
            "2".into(),
        )]))),
        billing_email: Some(None),
        ..Default::default()
    };
    let patched = block_on(cp.update_organization(&principal, child.id, patch, None)).unwrap();
    assert_eq!(patched.metadata.pairs().len(), 2);
    assert_eq!(patched.updated_at, at(NOW));

    // Same values again: no write (the mock allows only the one above).
    let same = OrganizationPatch {
        name: Some(child.name.as_str().to_owned()),
        metadata: Some(MetadataPatch::Merge(BTreeMap::from([(
            "a".into(),
            "1".into(),
        )]))),
        ..Default::default()
    };
    assert_eq!(
        block_on(cp.update_organization(&principal, child.id, same, None)).unwrap(),
        child
    );
}

#[test]
fn patching_an_archived_child_is_a_conflict() {
    let principal = admin();
    let child = org(
        Some(principal.organization.id),
        OrganizationStatus::Archived { at: at(1) },
    );
    let mut mocks = Mocks::new();
    let found = child.clone();
    mocks
        .organizations
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    mocks.organizations.expect_update().never();
    let patch = OrganizationPatch {
        name: Some("New".into()),
        ..Default::default()
    };
    let result = block_on(
        mocks
            .control_plane()
            .update_organization(&principal, child.id, patch, None),
    );
    assert!(matches!(result, Err(DomainError::Conflict { .. })));
}

#[test]
fn a_reason_over_500_characters_is_invalid() {
    let principal = admin();
    let cp = Mocks::new().control_plane();
    let id = org(None, OrganizationStatus::Active).id;
    let result = block_on(cp.suspend_organization(&principal, id, Some("x".repeat(501)), None));
    assert!(matches!(result, Err(DomainError::Validation(f)) if f[0].field == "reason"));
}

/// Exactly one audit event of `kind`, a transition with `reason`.
fn one_transition(trail: &crate::trail::Trail, kind: AuditEventType, reason: &str) -> bool {
    trail.audit.len() == 1
        && trail.audit[0].event_type == kind
        && trail.audit[0].request_id.as_deref() == Some("req_test")
        && trail.audit[0].data.contains(reason)
        && matches!(trail.audit[0].actor, crate::audit::Actor::ApiKey { .. })
}
