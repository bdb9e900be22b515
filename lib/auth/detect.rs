//! [`Authenticator`]: turns request headers into a [`Caller`].

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use serde_json::Value;

use crate::auth::error::AuthError;
use crate::auth::ids::SessionId;
use crate::auth::session::{SESSION_COOKIE_NAME, SESSION_HEADER, SessionCookies};
use crate::auth::settings::{AuthSettings, CookieFormat, Provider, ProviderCookie};
use crate::auth::verify::{MAX_TOKEN_BYTES, Verifier};
use crate::auth::{AnonymousCaller, Caller, UserCaller};
use crate::settings::ExposeSecret;

/// A Supabase session cookie holds refresh token and user JSON too, hence a
/// larger bound than for a bare JWT (it is split into ~3 KiB chunks).
const MAX_SUPABASE_COOKIE_BYTES: usize = 32 * 1024;
/// Supabase splits at most into a handful of chunks; bound the scan anyway.
const MAX_SUPABASE_CHUNKS: usize = 16;

/// Supabase writes `base64-` + base64url, with or without padding depending on version.
const LENIENT_BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Identifies callers. Build once per process (it owns the JWKS and
/// verified-claims caches) and share it, e.g. in an `Arc` or axum state.
pub struct Authenticator {
    provider: Provider,
    cookie: Option<ProviderCookie>,
    sessions: SessionCookies,
    verifier: Verifier,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator. `http` is used only for JWKS fetches; its
    /// per-request timeout is set from the settings.
    pub fn new(settings: AuthSettings, http: reqwest::Client) -> Self {
        let sessions = match SessionCookies::new(
            settings.session_secret.expose_secret().as_bytes().to_vec(),
        ) {
            Ok(sessions) => sessions,
            // AuthSettings::from_lookup already enforced the length.
            Err(_) => unreachable!("SESSION_SECRET validated by AuthSettings"),
        };
        Self {
            provider: settings.provider,
            cookie: settings.cookie.clone(),
            verifier: Verifier::new(&settings, http),
            sessions,
        }
    }

    /// The signer for anonymous session cookies (to issue new sessions).
    pub fn session_cookies(&self) -> &SessionCookies {
        &self.sessions
    }

    /// Classifies the caller.
    ///
    /// - JWT from `Authorization: Bearer` (preferred) or the provider cookie
    ///   → [`Caller::User`], with any valid anonymous session alongside.
    /// - Otherwise → [`Caller::Anonymous`], with the session from the
    ///   `X-Onboarding-Session` header (preferred) or `onboarding_session` cookie.
    /// - No credential at all is `Anonymous { session: None }`, not an error.
    /// - Any presented credential that fails a check is an error; there is no
    ///   silent downgrade to anonymous. The one exception is not a downgrade:
    ///   a signed-in user whose anonymous session does not verify (a rotated
    ///   `SESSION_SECRET`) is the same user, without that session.
    pub async fn detect(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let session = self.session(headers);
        let token = match bearer_token(headers)? {
            Some(token) => Some(token),
            None => self.provider_cookie_token(headers)?,
        };
        match token {
            None => Ok(Caller::Anonymous(AnonymousCaller { session: session? })),
            Some(token) => {
                let identity = self.verifier.verify(&token).await.inspect_err(|e| {
                    tracing::debug!(reason = e.code(), "rejected JWT");
                })?;
                Ok(Caller::User(UserCaller {
                    user_id: identity.user_id,
                    organization_id: identity.organization_id,
                    organization_role: identity.organization_role,
                    session: session.ok().flatten(),
                }))
            }
        }
    }

    fn session(&self, headers: &HeaderMap) -> Result<Option<SessionId>, AuthError> {
        let mut values = headers.get_all(SESSION_HEADER).iter();
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(AuthError::BadSession);
            }
            let value = value.to_str().map_err(|_| AuthError::BadSession)?;
            return self.sessions.verify(value.trim()).map(Some);
        }
        match first_cookie(headers, SESSION_COOKIE_NAME) {
            None => Ok(None),
            Some(raw) => {
                let value = std::str::from_utf8(raw).map_err(|_| AuthError::BadSession)?;
                self.sessions.verify(value).map(Some)
            }
        }
    }

    fn provider_cookie_token(&self, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
        let Some(cookie) = &self.cookie else {
            return Ok(None);
        };
        match cookie.format {
            CookieFormat::Jwt => {
                let Some(name) = &cookie.name else {
                    return Ok(None);
                };
                match first_cookie(headers, name) {
                    None => Ok(None),
                    Some([]) => Ok(None),
                    Some(raw) => {
                        if raw.len() > MAX_TOKEN_BYTES {
                            return Err(AuthError::TooLarge);
                        }
                        let token = std::str::from_utf8(raw)
                            .map_err(|_| AuthError::Malformed("cookie is not UTF-8"))?;
                        Ok(Some(token.to_owned()))
                    }
                }
            }
            CookieFormat::SupabaseSession => supabase_token(headers, cookie.name.as_deref()),
        }
    }
}

/// The Bearer token, if an `Authorization` header is present.
fn bearer_token(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed("more than one Authorization header"));
    }
    let bytes = value.as_bytes();
    if bytes.len() > MAX_TOKEN_BYTES + 64 {
        return Err(AuthError::TooLarge);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AuthError::Malformed("Authorization is not UTF-8"))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed("Authorization is not a Bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("Authorization is not a Bearer token"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed("empty Bearer token"));
    }
    Ok(Some(token.to_owned()))
}

/// Iterates `(name, value)` over all `Cookie` headers, as raw bytes: other
/// apps on the domain may set non-UTF-8 cookies, which must not break ours.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let (name, value) = (&pair[..eq], &pair[eq + 1..]);
            let value = value.trim_ascii();
            // RFC 6265 allows a DQUOTE-wrapped value.
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            Some((name.trim_ascii(), value))
        })
}

/// Whether the request's anonymous session, if any, came from the
/// `onboarding_session` cookie (no `X-Onboarding-Session` header, which wins):
/// the session a server may clear with `Set-Cookie` when it rejects it.
pub fn session_cookie_presented(headers: &HeaderMap) -> bool {
    !headers.contains_key(SESSION_HEADER) && first_cookie(headers, SESSION_COOKIE_NAME).is_some()
}

/// The first cookie named `name` (browsers send the most specific path first).
fn first_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    first_cookie_bytes(headers, name.as_bytes())
}

/// Extracts the access token from Supabase's `sb-<ref>-auth-token` cookie.
///
/// `name` is the exact base name, or `None` to take the first cookie that
/// looks like `sb-*-auth-token` (optionally chunked as `.0`, `.1`, ...).
fn supabase_token(headers: &HeaderMap, name: Option<&str>) -> Result<Option<String>, AuthError> {
    let base: Vec<u8> = match name {
        Some(name) => name.as_bytes().to_vec(),
        None => {
            let found = cookies(headers).find_map(|(n, _)| {
                let base = match n.iter().rposition(|b| *b == b'.') {
                    Some(dot) if n[dot + 1..].iter().all(u8::is_ascii_digit) => &n[..dot],
                    _ => n,
                };
                (base.starts_with(b"sb-") && base.ends_with(b"-auth-token")).then_some(base)
            });
            match found {
                Some(base) => base.to_vec(),
                None => return Ok(None),
            }
        }
    };

    let mut raw: Vec<u8> = Vec::new();
    if let Some(whole) = first_cookie_bytes(headers, &base) {
        raw.extend_from_slice(whole);
    } else {
        for i in 0..MAX_SUPABASE_CHUNKS {
            let mut chunk_name = base.clone();
            chunk_name.extend_from_slice(format!(".{i}").as_bytes());
            match first_cookie_bytes(headers, &chunk_name) {
                Some(chunk) => raw.extend_from_slice(chunk),
                None => break,
            }
            if raw.len() > MAX_SUPABASE_COOKIE_BYTES {
                return Err(AuthError::TooLarge);
            }
        }
    }
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_SUPABASE_COOKIE_BYTES {
        return Err(AuthError::TooLarge);
    }

    let json: Vec<u8> = if let Some(encoded) = raw.strip_prefix(b"base64-") {
        LENIENT_BASE64URL
            .decode(encoded)
            .map_err(|_| AuthError::Malformed("auth cookie is not valid base64"))?
    } else {
        percent_decode(&raw)
    };
    let value: Value = serde_json::from_slice(&json)
        .map_err(|_| AuthError::Malformed("auth cookie is not valid JSON"))?;
    let token = match &value {
        Value::Object(map) => map.get("access_token").and_then(Value::as_str),
        // Older auth-helpers: [access_token, refresh_token, ...].
        Value::Array(items) => items.first().and_then(Value::as_str),
        // Some setups store the bare JWT as a JSON string.
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
    .ok_or(AuthError::Malformed("auth cookie has no access_token"))?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    Ok(Some(token.to_owned()))
}

fn first_cookie_bytes<'a>(headers: &'a HeaderMap, name: &[u8]) -> Option<&'a [u8]> {
    cookies(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Decodes `%XX` escapes (cookie libraries URI-encode JSON values); invalid
/// escapes are kept literally and JSON parsing then decides.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                input.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                input.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            // Two hex digits fit in a byte.
            out.push(((hi << 4) | lo) as u8);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
impl Authenticator {
    pub(crate) fn verifier_cached_entries(&self) -> usize {
        self.verifier.cached_entries()
    }
}
