use crate::validation::FieldError;

/// An organization's display name: 1–128 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationName(String);

impl OrganizationName {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(input: &str) -> Result<Self, FieldError> {
        crate::validation::no_nul("name", input)?;
        let trimmed = input.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be 1-{} characters after trimming", Self::MAX_CHARS),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(OrganizationName::parse("  Acme ").unwrap().as_str(), "Acme");
        assert!(OrganizationName::parse("   ").is_err());
        assert!(OrganizationName::parse(&"é".repeat(128)).is_ok());
        assert!(OrganizationName::parse(&"é".repeat(129)).is_err());
    }
}
