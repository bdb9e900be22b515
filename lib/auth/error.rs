//! [`AuthError`]: why a credential was rejected; [`InvalidIdentifier`]: why an id was.

use http::{HeaderValue, StatusCode};

/// Why a presented credential was rejected.
///
/// Messages are static text on purpose: they end up in `WWW-Authenticate`
/// and logs, so they must never echo token contents, keys or secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The credential is not structurally valid (bad base64, bad JSON, wrong
    /// number of segments, bad header, JWE instead of JWS, bad claim types...).
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// `exp` is in the past (beyond the allowed clock skew).
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the allowed clock skew).
    #[error("token is not valid yet")]
    NotYetValid,
    /// The signature does not verify with the selected key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `iss` is missing or not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` is missing or does not contain a configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// The header `alg` is `none`, not in the allow-list, or does not match the key type.
    #[error("token algorithm is not allowed")]
    DisallowedAlgorithm,
    /// The header `kid` names no key in the provider's JWKS.
    #[error("token signing key is unknown")]
    UnknownKey,
    /// The configured user id claim is missing or empty.
    #[error("token has no subject")]
    MissingSubject,
    /// The token has no `exp` claim; tokens without expiry are never accepted.
    #[error("token has no expiry")]
    MissingExpiry,
    /// The credential is larger than the limit (8 KiB for a JWT).
    #[error("credential is too large")]
    TooLarge,
    /// The JWKS endpoint could not be reached and no cached key set exists.
    /// This is a server-side outage: the HTTP layer should answer 503, not 401.
    #[error("signing keys are temporarily unavailable")]
    JwksUnavailable,
    /// The anonymous session cookie/header is malformed or its signature is wrong.
    #[error("session is invalid")]
    BadSession,
    /// The anonymous session is well signed but no longer live: expired,
    /// merged into an account, or never stored here.
    #[error("session has expired")]
    SessionExpired,
}

impl AuthError {
    /// The value for a `WWW-Authenticate` response header (RFC 6750 §3).
    ///
    /// Always `Bearer error="invalid_token", error_description="..."`; the
    /// description is one of this enum's static messages (no quotes or
    /// backslashes, so no escaping is needed). For [`AuthError::JwksUnavailable`]
    /// the HTTP layer should answer 503 and may omit this header.
    pub fn www_authenticate(&self) -> HeaderValue {
        let value = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            self
        );
        HeaderValue::try_from(value)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
    }

    /// The HTTP status the caller should see: 503 for [`AuthError::JwksUnavailable`]
    /// (our dependency is down, the client did nothing wrong), 401 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::JwksUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A stable machine-readable code, e.g. for a problem+json `code` member.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "malformed",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::DisallowedAlgorithm => "disallowed_algorithm",
            AuthError::UnknownKey => "unknown_key",
            AuthError::MissingSubject => "missing_subject",
            AuthError::MissingExpiry => "missing_expiry",
            AuthError::TooLarge => "too_large",
            AuthError::JwksUnavailable => "jwks_unavailable",
            AuthError::BadSession => "bad_session",
            AuthError::SessionExpired => "session_expired",
        }
    }
}

/// Why a string was refused as a [`crate::auth::UserId`] or [`crate::auth::OrganizationId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdentifier {
    /// The string is empty.
    #[error("identifier is empty")]
    Empty,
    /// The string is longer than 200 characters.
    #[error("identifier is longer than 200 characters")]
    TooLong,
    /// The string contains a control character.
    #[error("identifier contains a control character")]
    ControlCharacter,
}
