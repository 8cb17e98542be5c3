use super::ControlPlane;
use crate::api_key::{KeyState, PresentedKey, Scope};
use crate::audit::{AuditData, AuditEventType, KILL_SWITCH_AUDIT_WINDOW};
use crate::error::{KillScope, KillSwitch};
use crate::policy::{self, Principal};
use crate::validation::FieldError;
use crate::{DomainError, OrganizationId, Timestamp};

/// What the audit log needs to know of the request being authenticated.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub method: String,
    /// The matched route pattern, or the path of an unknown route.
    pub route: String,
}

/// The header through which a parent acts inside one of its children.
pub const ACTING_HEADER: &str = "X-Layers-Organization";

impl ControlPlane {
    /// Admits a request by its bearer key (API.md §2.1, §3): the key must parse, exist, carry the
    /// stored env, match the stored hash and be active; then the kill switch must be off for its
    /// organization and that organization's parent. Every refusal before the kill switch is the
    /// same `Unauthenticated`.
    ///
    /// Reads the store on every call, with no cache, so a suspension committed by any process is
    /// seen by the very next request on every process.
    pub async fn authenticate(
        &self,
        bearer: &str,
        request: &RequestContext,
    ) -> Result<Principal, DomainError> {
        let presented = PresentedKey::parse(bearer).ok_or(DomainError::Unauthenticated)?;
        let credentials = self
            .ports
            .api_keys
            .find_credentials(&presented.handle)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        let key = &credentials.key;
        let now = self.ports.clock.now();
        // A killed key is answered by the kill switch, so its holder learns why; every other
        // key that is not usable now (revoked, past its rotation grace) is simply unknown.
        let refused = matches!(key.state_at(now), KeyState::Revoked { .. });
        if key.env != presented.env || !key.secret_hash.matches(presented.secret()) || refused {
            return Err(DomainError::Unauthenticated);
        }
        let principal = Principal {
            key: credentials.key.clone(),
            organization: credentials.organization.clone(),
            acting: None,
            request_id: request.request_id.clone(),
        };
        if let Err(refusal) = policy::kill_switch(&credentials, now) {
            self.audit_refusal(&principal, refusal, request, now).await;
            return Err(DomainError::KillSwitch(refusal));
        }
        self.usage.record(principal.key.id, now);
        Ok(principal)
    }

    /// Audits a request refused by the kill switch, at most once per key per minute. The refusal
    /// stands even if the audit log cannot be written: the kill switch never fails open.
    async fn audit_refusal(
        &self,
        principal: &Principal,
        refusal: KillSwitch,
        request: &RequestContext,
        now: Timestamp,
    ) {
        let scope = match refusal.scope {
            KillScope::Organization => "organization",
            KillScope::Key(_) => "key",
        };
        let data = AuditData::KillSwitch {
            api_key_id: principal.key.id,
            scope,
            method: request.method.clone(),
            route: request.route.clone(),
        };
        let event = self.audit_event(
            Some(principal),
            principal.organization.id,
            AuditEventType::KillSwitchRefused,
            &data,
            now,
        );
        let since = now.plus(-KILL_SWITCH_AUDIT_WINDOW);
        let _ = self.ports.audit.record_refusal(&event, since).await;
    }

    /// Acting inside a child (`X-Layers-Organization`, API.md §2.3): only an `org:admin` key of
    /// the child's parent may (403), the header must be an organization id (422), and the
    /// organization must be a direct child (404).
    pub async fn act_inside(
        &self,
        principal: Principal,
        header: &str,
    ) -> Result<Principal, DomainError> {
        policy::require_scope(&principal, Scope::OrgAdmin)?;
        let id = OrganizationId::parse(header.trim())
            .map_err(|e| DomainError::validation(FieldError::new(ACTING_HEADER, e.to_string())))?;
        let child = self.load_child(&principal, id).await?;
        Ok(Principal {
            acting: Some(child),
            ..principal
        })
    }
}
