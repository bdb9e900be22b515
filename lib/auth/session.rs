//! Signed anonymous-session cookies.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::{HeaderName, HeaderValue};
use sha2::Sha256;

use crate::auth::error::AuthError;
use crate::auth::ids::SessionId;
use crate::settings::ConfigError;

type HmacSha256 = Hmac<Sha256>;

/// Name of the anonymous session cookie.
pub const SESSION_COOKIE_NAME: &str = "onboarding_session";

/// Header that non-browser clients use to send the same signed value.
pub const SESSION_HEADER_NAME: &str = "x-onboarding-session";

/// [`SESSION_HEADER_NAME`] as a header name: a lookup by a `&str` parses it
/// on every call.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static(SESSION_HEADER_NAME);

/// Minimum secret length: 256 bits, the HMAC-SHA256 block of entropy.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Domain separation so a MAC made for this cookie can never be mistaken
/// for one made with the same secret for another purpose.
const MAC_CONTEXT: &[u8] = b"onboarding_session.v1:";

/// 32 hex + '.' + 43 base64url chars; anything longer is not ours.
const MAX_VALUE_LEN: usize = 32 + 1 + 43;

/// Issues and verifies `onboarding_session` values of the form
/// `<32 lowercase hex id>.<base64url HMAC-SHA256 signature>`.
///
/// The same value is accepted in the `X-Onboarding-Session` header.
#[derive(Clone)]
pub struct SessionCookies {
    secret: Vec<u8>,
}

impl fmt::Debug for SessionCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookies")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SessionCookies {
    /// Builds a signer from `SESSION_SECRET`; it must be at least 32 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(
                "SESSION_SECRET",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        Ok(Self { secret })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(MAC_CONTEXT);
        mac
    }

    /// The signed cookie/header value for `id`.
    pub fn issue(&self, id: &SessionId) -> String {
        let hex = id.to_hex();
        let mut mac = self.mac();
        mac.update(hex.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{hex}.{signature}")
    }

    /// Checks a value produced by [`SessionCookies::issue`]; the signature is
    /// compared in constant time. Any defect yields [`AuthError::BadSession`].
    pub fn verify(&self, value: &str) -> Result<SessionId, AuthError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(AuthError::BadSession);
        }
        let (hex, signature) = value.split_once('.').ok_or(AuthError::BadSession)?;
        let id = SessionId::parse_hex(hex)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::BadSession)?;
        let mut mac = self.mac();
        mac.update(hex.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSession)?;
        Ok(id)
    }

    /// A `Set-Cookie` value: `onboarding_session=<signed>; Max-Age=<secs>; Path=/; HttpOnly; SameSite=Lax[; Secure]`.
    ///
    /// Pass `secure = false` only for plain-http localhost development;
    /// browsers drop `Secure` cookies on http origins.
    pub fn set_cookie_header(
        &self,
        id: &SessionId,
        secure: bool,
        max_age: Duration,
    ) -> HeaderValue {
        let mut cookie = format!(
            "{SESSION_COOKIE_NAME}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax",
            self.issue(id),
            max_age.as_secs()
        );
        if secure {
            cookie.push_str("; Secure");
        }
        to_header_value(cookie)
    }

    /// A `Set-Cookie` value that deletes the session cookie (e.g. after the
    /// draft was merged into a signed-in user's account).
    pub fn clear_cookie_header(secure: bool) -> HeaderValue {
        let mut cookie =
            format!("{SESSION_COOKIE_NAME}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax");
        if secure {
            cookie.push_str("; Secure");
        }
        to_header_value(cookie)
    }
}

/// Cookies are `Secure` except when the wizard is served from localhost,
/// where browsers would drop them over plain http.
pub fn cookie_is_secure(headers: &http::HeaderMap) -> bool {
    let host = headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let hostname = host.rsplit_once(':').map_or(host, |(name, _)| name);
    !matches!(hostname, "localhost" | "127.0.0.1" | "[::1]")
}

fn to_header_value(cookie: String) -> HeaderValue {
    // Built only from hex, base64url, digits and fixed ASCII, so always valid.
    match HeaderValue::try_from(cookie) {
        Ok(value) => value,
        Err(_) => unreachable!("cookie text is visible ASCII"),
    }
}
