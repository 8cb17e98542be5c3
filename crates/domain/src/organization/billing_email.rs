use crate::validation::FieldError;

/// A plausible email address (≤ 254 characters, `local@domain.tld`). Deliverability is not
/// something a syntax check can know, so this only rejects what can't be an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEmail(String);

impl BillingEmail {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let invalid = || {
            FieldError::new(
                "billingEmail",
                "must be an email address of at most 254 characters",
            )
        };
        let value = input.trim();
        if value.chars().count() > Self::MAX_CHARS
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || local.chars().count() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plausible_and_rejects_implausible() {
        assert!(BillingEmail::parse("ops@acme.example").is_ok());
        for bad in [
            "",
            "ops",
            "ops@",
            "@acme.example",
            "ops@acme",
            "a b@acme.example",
            "a@b@c.d",
            "ops@acme..example",
        ] {
            assert!(BillingEmail::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@{}.example", "a".repeat(60), "b".repeat(200));
        assert!(BillingEmail::parse(&long).is_err());
    }
}
