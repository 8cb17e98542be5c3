//! The key string `lp_<env>_<handle>_<secret>` (API.md §2.1): how it is minted, parsed, and
//! verified against what the store keeps (the handle and a SHA-256 of the secret, never the
//! secret). The secret carries 256 bits from the OS CSPRNG, so a plain SHA-256 is enough: there is
//! nothing to brute-force, and no slow password hash is needed on the hot path.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyEnv::Live => "live",
            KeyEnv::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(KeyEnv::Live),
            "test" => Some(KeyEnv::Test),
            _ => None,
        }
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const HANDLE_CHARS: usize = 16;
const SECRET_CHARS: usize = 43;

/// The public, unique lookup part of a key: 16 characters of upper-case Crockford base32.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHandle(String);

impl KeyHandle {
    /// Encodes 80 random bits as 16 base32 characters.
    pub fn from_random(bytes: [u8; 10]) -> Self {
        let mut bits: u128 = 0;
        for byte in bytes {
            bits = (bits << 8) | u128::from(byte);
        }
        let handle = (0..HANDLE_CHARS)
            .rev()
            .map(|i| char::from(CROCKFORD[((bits >> (i * 5)) & 0x1f) as usize]))
            .collect();
        Self(handle)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let valid = s.len() == HANDLE_CHARS && s.bytes().all(|b| CROCKFORD.contains(&b));
        valid.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a key's secret part: what the store keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison, so response timing says nothing about how close a guess was.
    pub fn matches(&self, secret: &str) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A key string as presented in `Authorization: Bearer …`, split into its parts.
pub struct PresentedKey {
    pub env: KeyEnv,
    pub handle: KeyHandle,
    secret: String,
}

impl PresentedKey {
    /// `None` for anything not shaped like a key; the caller answers all failures alike.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix("lp_")?;
        let (env, rest) = rest.split_once('_')?;
        let env = KeyEnv::parse(env)?;
        // The secret is base64url and may itself contain `_`: split by length, not by `_`.
        let handle = KeyHandle::parse(rest.get(..HANDLE_CHARS)?)?;
        let secret = rest.get(HANDLE_CHARS..)?.strip_prefix('_')?;
        let secret_ok = secret.len() == SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        secret_ok.then(|| Self {
            env,
            handle,
            secret: secret.to_owned(),
        })
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PresentedKey(lp_{}_{}_…)",
            self.env.as_str(),
            self.handle.as_str()
        )
    }
}

/// A freshly minted key: the full string to show once, and what to store. `Clone` so that the
/// answer of an in-place rotation can be rendered again inside the store's transaction (its
/// idempotency record, API.md §1.6).
#[derive(Clone)]
pub struct MintedSecret {
    pub env: KeyEnv,
    pub handle: KeyHandle,
    pub hash: SecretHash,
    full: String,
}

impl MintedSecret {
    pub fn new(env: KeyEnv, handle_bytes: [u8; 10], secret_bytes: [u8; 32]) -> Self {
        let handle = KeyHandle::from_random(handle_bytes);
        let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
        let full = format!("lp_{}_{}_{}", env.as_str(), handle.as_str(), secret);
        Self {
            env,
            hash: SecretHash::of(&secret),
            handle,
            full,
        }
    }

    /// The whole key string. Shown to the caller once; never logged, never stored.
    pub fn reveal(&self) -> &str {
        &self.full
    }
}

impl fmt::Debug for MintedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MintedSecret(lp_{}_{}_…)",
            self.env.as_str(),
            self.handle.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_back_and_verify() {
        let minted = MintedSecret::new(KeyEnv::Test, [0xff; 10], [0xfb; 32]);
        let full = minted.reveal();
        assert!(full.starts_with("lp_test_ZZZZZZZZZZZZZZZZ_"));
        assert_eq!(full.len(), "lp_test_".len() + 16 + 1 + 43);
        let presented = PresentedKey::parse(full).unwrap();
        assert_eq!(presented.env, KeyEnv::Test);
        assert_eq!(presented.handle, minted.handle);
        assert!(minted.hash.matches(presented.secret()));
        assert!(!minted.hash.matches("x"));
    }

    #[test]
    fn secrets_containing_underscores_parse() {
        // 0xff bytes encode to `_` in base64url.
        let minted = MintedSecret::new(KeyEnv::Live, [0; 10], [0xff; 32]);
        assert!(minted.reveal().contains("____"));
        assert!(PresentedKey::parse(minted.reveal()).is_some());
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = MintedSecret::new(KeyEnv::Live, [7; 10], [9; 32]);
        let good = good.reveal();
        for bad in [
            String::new(),
            good.replace("lp_live_", "lp_prod_"),
            good.replace("lp_", "xx_"),
            good[..good.len() - 1].to_string(),
            format!("{good}A"),
            good.to_lowercase(),
            good.replacen('_', "-", 3),
        ] {
            assert!(PresentedKey::parse(&bad).is_none(), "{bad}");
        }
    }
}
