//! What was wrong with an input, field by field (rendered as `details.fields` of a 422).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Refuses the NUL character (U+0000), which no store can keep in text. Every free-text field
/// goes through this.
pub fn no_nul(field: &str, value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        Err(FieldError::new(
            field,
            "must not contain the NUL character (U+0000)",
        ))
    } else {
        Ok(())
    }
}
