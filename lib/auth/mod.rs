//! Caller identification for the onboarding wizard API.
//!
//! Every request is one of:
//! - **anonymous**: no JWT; may carry a signed `onboarding_session` cookie
//!   (HttpOnly, Secure, SameSite=Lax) or, for non-browser clients, the same
//!   signed value in `X-Onboarding-Session`;
//! - **authenticated**: a JWT from the app's auth provider in
//!   `Authorization: Bearer` or in the provider's cookie;
//! - **invalid**: a presented credential failed a check → [`AuthError`].
//!
//! A missing credential is not an error: it is `Caller::Anonymous { session: None }`.
//!
//! # Mapping errors to HTTP
//! [`AuthError::JwksUnavailable`] means *our* dependency (the provider's
//! JWKS endpoint) is down and nothing is cached: answer **503**. Every other
//! variant is **401** problem+json with `WWW-Authenticate` from
//! [`AuthError::www_authenticate`]. [`AuthError::status`] encodes this.
//!
//! # Providers
//! - **Clerk**: RS256 via JWKS (`AUTH_JWKS_URL`, or `AUTH_ISSUER` +
//!   `/.well-known/jwks.json`); cookie `__session`; org from `org_id`/`org_role`
//!   (v1) or `o.id`/`o.rol` (v2 session tokens).
//! - **Supabase**: HS256 with the legacy `AUTH_JWT_SECRET` and/or asymmetric
//!   keys (ES256/RS256) from `AUTH_JWKS_URL`; cookie `sb-<ref>-auth-token`
//!   (`base64-` JSON, JSON object or array holding `access_token`; chunked
//!   `.0`, `.1`, ... cookies are joined); audience `authenticated` by default.
//! - **Auth.js / NextAuth**: its default session cookie is a JWE (encrypted),
//!   which this module does **not** decrypt. Supported setup: the Next.js app
//!   signs a JWS with HS256 using the shared `AUTH_JWT_SECRET` (e.g. a custom
//!   `jwt.encode`, or minting a separate API token) and sends it as
//!   `Authorization: Bearer`. A 5-segment (JWE) token is rejected as malformed.
//! - **OIDC**: issuer, JWKS URL and audience required; claim paths may be dotted.
//! - **hs256**: local development with a shared secret (see [`mint_dev_token`]).
//!
//! # Webhooks
//! The identity provider's own calls (Clerk's `user.deleted`, through Svix)
//! carry no token: [`verify_webhook`] checks their signature, [`ClerkEvent`] reads them.

mod claims_cache;
mod detect;
mod error;
mod ids;
mod jwks;
mod session;
mod settings;
mod verify;
mod webhook;

mod dev;
#[cfg(test)]
mod tests;

pub use detect::{Authenticator, session_cookie_presented};
pub use dev::mint_dev_token;
pub use error::{AuthError, InvalidIdentifier};
pub(crate) use ids::hex_lower;
pub use ids::{OrganizationId, SessionId, UserId};
pub use session::{
    SESSION_COOKIE_NAME, SESSION_HEADER, SESSION_HEADER_NAME, SessionCookies, cookie_is_secure,
};
pub use settings::{
    AuthSettings, LOCAL_AUTH_JWT_SECRET, LOCAL_SESSION_SECRET, Provider, env_var_docs,
};
pub use webhook::{
    ClerkEvent, ClerkWebhookSettings, TOLERANCE_SECONDS, WebhookError, verify_webhook,
};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No JWT was presented.
    Anonymous(AnonymousCaller),
    /// A valid JWT was presented.
    User(UserCaller),
}

impl Caller {
    /// The anonymous session presented with the request, for either kind of caller.
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            Caller::Anonymous(a) => a.session(),
            Caller::User(u) => u.session(),
        }
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&UserCaller> {
        match self {
            Caller::User(u) => Some(u),
            Caller::Anonymous(_) => None,
        }
    }

    /// `user`, `session` or `anonymous`: what logs and spans say of a caller.
    pub fn kind(&self) -> &'static str {
        match self {
            Caller::User(_) => "user",
            Caller::Anonymous(anonymous) if anonymous.session().is_some() => "session",
            Caller::Anonymous(_) => "anonymous",
        }
    }
}

/// A caller without a JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousCaller {
    pub(crate) session: Option<SessionId>,
}

impl AnonymousCaller {
    /// The verified session, or `None` when the caller has none yet
    /// (the handler may then create one and set the cookie).
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }
}

/// A caller with a verified JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCaller {
    pub(crate) user_id: UserId,
    pub(crate) organization_id: Option<OrganizationId>,
    pub(crate) organization_role: Option<String>,
    pub(crate) session: Option<SessionId>,
}

impl UserCaller {
    /// The user id from the configured claim (default `sub`).
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The active organization, if the token names one.
    pub fn organization_id(&self) -> Option<&OrganizationId> {
        self.organization_id.as_ref()
    }

    /// The role in the active organization, verbatim from the token
    /// (Clerk v1 `org:admin`, v2 `admin`; Supabase's `role` is the Postgres role).
    pub fn organization_role(&self) -> Option<&str> {
        self.organization_role.as_deref()
    }

    /// An anonymous session presented alongside the JWT: the drafts made
    /// before sign-in, to be merged into the user's account.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }
}
