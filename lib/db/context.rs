//! Who the database believes is calling: the role a transaction switches to
//! and the claims it publishes, which the Row Level Security policies read.

use crate::monitoring::write_json_string;

/// The database roles a request may act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    Anonymous,
    Authenticated,
    /// No switched role: the login role itself (`onboarding_app`), which
    /// holds no privilege on any table and may execute only what is granted
    /// to it, the erasure of one user for the identity provider's webhook.
    Login,
}

impl DbRole {
    /// The value of the `role` setting; `none` is the login role.
    pub fn as_str(self) -> &'static str {
        match self {
            DbRole::Anonymous => "anonymous",
            DbRole::Authenticated => "authenticated",
            DbRole::Login => "none",
        }
    }
}

/// Who the database believes is calling, for the length of one transaction.
///
/// Built from an already verified caller; the claims are written by this
/// backend, never copied from a token.
#[derive(Clone, PartialEq, Eq)]
pub struct RlsContext {
    pub(super) role: DbRole,
    pub(super) claims: String,
}

impl std::fmt::Debug for RlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The claims hold the session hash, which is as good as the session.
        f.debug_struct("RlsContext")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The claims a transaction publishes, written straight to their JSON (no
/// `serde_json::Value` built on each request, nor a serializer walking the
/// keys). Fields in alphabetical order, as a `serde_json::Map` orders its
/// keys, so the text is what it was when it was built as one.
struct Claims<'a> {
    org_id: Option<&'a str>,
    role: &'static str,
    session_id: Option<&'a str>,
    sub: Option<&'a str>,
}

impl Claims<'_> {
    fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push('{');
        let members = [
            ("\"org_id\":", self.org_id),
            ("\"role\":", Some(self.role)),
            ("\"session_id\":", self.session_id),
            ("\"sub\":", self.sub),
        ];
        for (name, value) in members {
            let Some(value) = value else { continue };
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(name);
            write_json_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

impl RlsContext {
    /// An anonymous visitor, optionally with a session (given as its SHA-256 hex).
    pub fn anonymous(session_hash: Option<&str>) -> Self {
        Self {
            role: DbRole::Anonymous,
            claims: Claims {
                org_id: None,
                role: "anonymous",
                session_id: session_hash,
                sub: None,
            }
            .to_json(),
        }
    }

    /// A signed-in user, with the organization active in their token and the
    /// anonymous session they presented, if any (to merge its drafts).
    pub fn user(user_id: &str, organization_id: Option<&str>, session_hash: Option<&str>) -> Self {
        Self {
            role: DbRole::Authenticated,
            claims: Claims {
                org_id: organization_id,
                role: "authenticated",
                session_id: session_hash,
                sub: Some(user_id),
            }
            .to_json(),
        }
    }

    /// No caller at all: the login role, with empty claims, for work no
    /// user's token asks for (the identity provider's webhook). It can reach
    /// no table; only functions granted to it.
    pub fn login_role() -> Self {
        Self {
            role: DbRole::Login,
            claims: "{}".to_string(),
        }
    }

    pub fn role(&self) -> DbRole {
        self.role
    }

    /// The claims JSON the transaction publishes.
    pub fn claims(&self) -> &str {
        &self.claims
    }

    /// The context of a verified caller.
    pub fn for_caller(caller: &crate::auth::Caller) -> Self {
        match caller {
            crate::auth::Caller::Anonymous(anonymous) => {
                RlsContext::anonymous(anonymous.session().map(|s| s.hash_hex()).as_deref())
            }
            crate::auth::Caller::User(user) => RlsContext::user(
                user.user_id().as_str(),
                user.organization_id().map(|org| org.as_str()),
                user.session().map(|s| s.hash_hex()).as_deref(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_claims_text_is_the_sorted_json_object_of_the_caller() {
        let cases = [
            (RlsContext::anonymous(None), json!({ "role": "anonymous" })),
            (
                RlsContext::anonymous(Some("ab12")),
                json!({ "role": "anonymous", "session_id": "ab12" }),
            ),
            (
                RlsContext::user("user_\"1", None, None),
                json!({ "role": "authenticated", "sub": "user_\"1" }),
            ),
            (
                RlsContext::user("user\\\n\u{1}é", Some("org_\"9"), None),
                json!({ "role": "authenticated", "sub": "user\\\n\u{1}é", "org_id": "org_\"9" }),
            ),
            (
                RlsContext::user("user_1", Some("org_9"), Some("ab12")),
                json!({ "role": "authenticated", "sub": "user_1", "org_id": "org_9", "session_id": "ab12" }),
            ),
        ];
        for (context, expected) in cases {
            // The same text as serde_json's own (sorted) map gives.
            assert_eq!(context.claims(), expected.to_string());
        }
    }
}
