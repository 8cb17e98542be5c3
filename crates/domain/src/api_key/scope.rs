use std::fmt;
use std::str::FromStr;

/// A permission a key may hold (API.md §2.2). Deny by default: a route names the one it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The control plane over the key's children. Never delegated to a child key.
    OrgAdmin,
    /// Every data scope (not `org:admin`).
    AllData,
    CreditsRead,
    CreditsWrite,
    WebhooksRead,
    WebhooksWrite,
    AuditRead,
    KeysRead,
    KeysWrite,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::OrgAdmin,
        Scope::AllData,
        Scope::CreditsRead,
        Scope::CreditsWrite,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::AuditRead,
        Scope::KeysRead,
        Scope::KeysWrite,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::OrgAdmin => "org:admin",
            Scope::AllData => "*",
            Scope::CreditsRead => "credits:read",
            Scope::CreditsWrite => "credits:write",
            Scope::WebhooksRead => "webhooks:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::AuditRead => "audit:read",
            Scope::KeysRead => "keys:read",
            Scope::KeysWrite => "keys:write",
        }
    }

    fn is_data_scope(&self) -> bool {
        !matches!(self, Scope::OrgAdmin | Scope::AllData)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or(())
    }
}

/// The scopes a key holds, without duplicates, in the order they were granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut unique = Vec::new();
        for scope in scopes {
            if !unique.contains(&scope) {
                unique.push(scope);
            }
        }
        Self(unique)
    }

    /// Whether a key with these scopes may do what `required` guards. `*` covers every data
    /// scope, never `org:admin`.
    pub fn grants(&self, required: Scope) -> bool {
        self.0.contains(&required) || (required.is_data_scope() && self.0.contains(&Scope::AllData))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_covers_data_scopes_but_not_org_admin() {
        let star = Scopes::new([Scope::AllData]);
        assert!(star.grants(Scope::CreditsRead));
        assert!(star.grants(Scope::KeysWrite));
        assert!(star.grants(Scope::AllData));
        assert!(!star.grants(Scope::OrgAdmin));
        let narrow = Scopes::new([Scope::CreditsRead]);
        assert!(!narrow.grants(Scope::AllData));
        assert!(!narrow.grants(Scope::CreditsWrite));
    }

    #[test]
    fn names_round_trip_and_duplicates_collapse() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("org:root".parse::<Scope>().is_err());
        assert_eq!(Scopes::new([Scope::KeysRead, Scope::KeysRead]).len(), 1);
    }
}
