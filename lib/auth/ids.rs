//! Identifier newtypes, each validated once at the boundary.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::auth::error::{AuthError, InvalidIdentifier};

/// Longest identifier we accept; provider ids are far shorter, so anything
/// longer is a sign of abuse and would only bloat database rows and logs.
const MAX_IDENTIFIER_CHARS: usize = 200;

fn check_identifier(raw: &str) -> Result<(), InvalidIdentifier> {
    if raw.is_empty() {
        return Err(InvalidIdentifier::Empty);
    }
    if raw.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(InvalidIdentifier::TooLong);
    }
    if raw.chars().any(char::is_control) {
        return Err(InvalidIdentifier::ControlCharacter);
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `raw`: non-empty, at most 200 characters, no control characters.
            pub fn parse(raw: &str) -> Result<Self, InvalidIdentifier> {
                check_identifier(raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// The identifier as issued by the auth provider.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// The authenticated user's id (the provider's `sub`, or the configured claim).
    UserId
);
identifier!(
    /// The id of the organization the user is acting in, when the provider has one.
    OrganizationId
);

/// An anonymous onboarding session: 128 random bits.
///
/// Shown to clients only inside a signed cookie/header value (see
/// [`crate::auth::SessionCookies`]); the database stores [`SessionId::hash_hex`]
/// so a leaked table row cannot be replayed as a cookie.
/// `Debug` is redacted because the id is a bearer credential.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the OS random source fails, which only happens on a broken system;
    /// continuing with a predictable id would be worse than failing the request.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        if let Err(err) = getrandom::fill(&mut bytes) {
            panic!("operating system random source failed: {err}");
        }
        Self(bytes)
    }

    /// Parses the canonical form: exactly 32 lowercase hex digits.
    ///
    /// Only the canonical form is accepted so that one session has exactly one
    /// textual spelling (and therefore one hash in the database).
    pub fn parse_hex(raw: &str) -> Result<Self, AuthError> {
        let raw = raw.as_bytes();
        if raw.len() != 32 {
            return Err(AuthError::BadSession);
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(AuthError::BadSession)?;
            let lo = hex_value(pair[1]).ok_or(AuthError::BadSession)?;
            bytes[i] = (hi << 4) | lo;
        }
        Ok(Self(bytes))
    }

    /// The 32-character lowercase hex form (the same as `Display`).
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }

    /// Lowercase hex SHA-256 of the 32-character lowercase hex form
    /// (i.e. `sha256(id.to_hex().as_bytes())`): the value the database stores.
    ///
    /// Hashing the text form (not the raw bytes) keeps it reproducible from
    /// SQL or JS: `encode(sha256('<hex>'::bytea), 'hex')`.
    pub fn hash_hex(&self) -> String {
        hex_lower(&Sha256::digest(self.to_hex().as_bytes()))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
