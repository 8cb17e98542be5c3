//! Opaque page cursors (API.md §1.5): the position of the last item of a page, with a checksum
//! bound to the listing it came from, so a cursor that was edited, truncated or taken from
//! another listing is a clear `422` rather than a silently wrong page. The checksum guards against
//! mistakes, not adversaries: a forged cursor can only point somewhere inside the caller's own
//! listing, which the caller may read anyway.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use domain::pagination::PageCursor;
use domain::Timestamp;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

pub fn encode(list: &str, cursor: PageCursor) -> String {
    let payload = format!("{}.{}", cursor.created_at.unix_micros(), cursor.id.simple());
    URL_SAFE_NO_PAD.encode(format!("{payload}.{}", checksum(list, &payload)))
}

pub fn decode(list: &str, raw: &str) -> Result<PageCursor, ApiError> {
    let invalid = || ApiError::invalid("cursor", "is not a cursor this listing returned");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (payload, sum) = text.rsplit_once('.').ok_or_else(invalid)?;
    if sum != checksum(list, payload) {
        return Err(invalid());
    }
    let (micros, id) = payload.split_once('.').ok_or_else(invalid)?;
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(Timestamp::from_unix_micros)
        .ok_or_else(invalid)?;
    let id = Uuid::try_parse(id).map_err(|_| invalid())?;
    Ok(PageCursor { created_at, id })
}

fn checksum(list: &str, payload: &str) -> String {
    let digest = Sha256::digest(format!("cursor.v1.{list}.{payload}"));
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_tampering() {
        let cursor = PageCursor {
            created_at: Timestamp::from_unix_micros(1_780_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        let raw = encode("organizations", cursor);
        assert_eq!(decode("organizations", &raw).unwrap(), cursor);
        assert!(decode("api_keys", &raw).is_err());
        let mut tampered = raw.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        assert!(decode("organizations", &String::from_utf8(tampered).unwrap()).is_err());
        assert!(decode("organizations", "").is_err());
        assert!(decode("organizations", "!!!").is_err());
    }
}
