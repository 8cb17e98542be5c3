//! Reading the audit log (API.md §9).

use super::ControlPlane;
use crate::api_key::Scope;
use crate::audit::{AuditEvent, AuditFilter};
use crate::pagination::{Page, PageCursor, PageRequest};
use crate::policy::{self, Principal};
use crate::DomainError;

impl ControlPlane {
    /// The acting organization's audit log, newest first: the key's own, or — with the acting
    /// header — a child's, archived children included.
    pub async fn audit_log(
        &self,
        principal: &Principal,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, DomainError> {
        policy::require_scope(principal, Scope::AuditRead)?;
        let rows = self
            .ports
            .audit
            .list(principal.acting_organization().id, filter, page.overfetch())
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |e| PageCursor {
            created_at: e.occurred_at,
            id: e.id.as_uuid(),
        }))
    }
}
