//! Whether a caller wants AI suggestions, and whether their organization allows them.
//!
//! The default is off: no row, `mode = off`, or a field override `off` all
//! mean nothing is sent. Rows are reached through RLS like progress rows: a
//! user's own, or an anonymous session's own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::db::{DbError, DbRole, Statement, Tx};

/// Off or suggest, for everything or for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiMode {
    Off,
    Suggest,
}

impl AiMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AiMode::Off => "off",
            AiMode::Suggest => "suggest",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "off" => Some(AiMode::Off),
            "suggest" => Some(AiMode::Suggest),
            _ => None,
        }
    }
}

/// A caller's stored choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiPreferences {
    pub mode: AiMode,
    /// `step.field` → mode, overriding `mode` for that field.
    pub field_overrides: BTreeMap<String, AiMode>,
    /// The consent text version shown when they opted in.
    pub consent_version: Option<String>,
    pub chosen_at: DateTime<Utc>,
}

impl AiPreferences {
    /// Whether the caller opted in to suggestions for `step.field`.
    pub fn allows(&self, step: &str, field: &str) -> bool {
        let mode = self
            .field_overrides
            .get(&format!("{step}.{field}"))
            .copied()
            .unwrap_or(self.mode);
        mode == AiMode::Suggest && self.consent_version.is_some()
    }
}

/// What a caller sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferencesInput {
    pub mode: AiMode,
    pub field_overrides: BTreeMap<String, AiMode>,
    /// Required (by the database too) when anything is `suggest`.
    pub consent_version: Option<String>,
}

fn overrides_json(overrides: &BTreeMap<String, AiMode>) -> Value {
    Value::Object(
        overrides
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.as_str().to_string())))
            .collect(),
    )
}

fn from_row(row: &Row) -> AiPreferences {
    let overrides: Value = row.get("field_overrides");
    AiPreferences {
        mode: AiMode::parse(row.get("mode")).unwrap_or(AiMode::Off),
        field_overrides: overrides
            .as_object()
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), AiMode::parse(v.as_str()?)?)))
                    .collect()
            })
            .unwrap_or_default(),
        consent_version: row.get("consent_version"),
        chosen_at: row.get("chosen_at"),
    }
}

const FETCH_OWN: Statement = Statement::new(
    "select mode, field_overrides, consent_version, chosen_at
     from onboarding.ai_preferences
     where user_id = (select onboarding.current_user_id())
        or (session_id = (select onboarding.current_session_id())
            and (select onboarding.current_user_id()) is null)",
    &[],
);

/// The upsert of the caller's own row, keyed by the user or by the session:
/// one statement text per key, so each is prepared once.
macro_rules! upsert_own {
    ($key:literal) => {
        Statement::new(
            concat!(
                "insert into onboarding.ai_preferences (",
                $key,
                "_id, mode, field_overrides, consent_version)
     values (onboarding.current_",
                $key,
                "_id(), $1, $2, $3)
     on conflict (",
                $key,
                "_id) where ",
                $key,
                "_id is not null do update
       set mode = excluded.mode, field_overrides = excluded.field_overrides,
           consent_version = excluded.consent_version, chosen_at = now()
     returning mode, field_overrides, consent_version, chosen_at"
            ),
            &[Type::TEXT, Type::JSONB, Type::TEXT],
        )
    };
}

const UPSERT_USER: Statement = upsert_own!("user");
const UPSERT_SESSION: Statement = upsert_own!("session");

const FETCH_ORGANIZATION_POLICY: Statement = Statement::new(
    "select ai_allowed, updated_at from onboarding.organization_ai_policies
     where organization_id = (select onboarding.current_organization_id())",
    &[],
);

const WRITE_ORGANIZATION_POLICY: Statement = Statement::new(
    "insert into onboarding.organization_ai_policies (organization_id, ai_allowed)
     values (onboarding.current_organization_id(), $1)
     on conflict (organization_id) do update set ai_allowed = excluded.ai_allowed
     returning ai_allowed, updated_at",
    &[Type::BOOL],
);

/// The active organization's AI policy as stored: whether members may use
/// AI suggestions, and when an admin last set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrganizationPolicy {
    pub ai_allowed: bool,
    pub updated_at: DateTime<Utc>,
}

/// The active organization's stored policy; `None` when no admin ever set
/// one (AI is then allowed). Readable by anyone acting in the organization.
pub async fn fetch_organization_policy(tx: &Tx<'_>) -> Result<Option<OrganizationPolicy>, DbError> {
    Ok(tx
        .query_opt(&FETCH_ORGANIZATION_POLICY, &[])
        .await?
        .map(|row| OrganizationPolicy {
            ai_allowed: row.get(0),
            updated_at: row.get(1),
        }))
}

/// Sets the active organization's policy; only its admins may (RLS refuses
/// anyone else). `updated_at` is kept by the table's `touch_updated_at` trigger.
pub async fn write_organization_policy(
    tx: &Tx<'_>,
    ai_allowed: bool,
) -> Result<OrganizationPolicy, DbError> {
    let row = tx
        .query_one(&WRITE_ORGANIZATION_POLICY, &[&ai_allowed])
        .await?;
    Ok(OrganizationPolicy {
        ai_allowed: row.get(0),
        updated_at: row.get(1),
    })
}

/// The caller's own preferences (the user's when signed in, else the session's).
pub async fn fetch_own(tx: &Tx<'_>) -> Result<Option<AiPreferences>, DbError> {
    Ok(tx.query_opt(&FETCH_OWN, &[]).await?.as_ref().map(from_row))
}

/// Records the caller's choice; the owner comes from the transaction's context.
pub async fn set_own(
    tx: &Tx<'_>,
    role: DbRole,
    input: &PreferencesInput,
) -> Result<AiPreferences, DbError> {
    let statement = match role {
        DbRole::Authenticated => &UPSERT_USER,
        // The login role may not write preferences: the database refuses it.
        DbRole::Anonymous | DbRole::Login => &UPSERT_SESSION,
    };
    let overrides = overrides_json(&input.field_overrides);
    let row = tx
        .query_one(
            statement,
            &[&input.mode.as_str(), &overrides, &input.consent_version],
        )
        .await?;
    Ok(from_row(&row))
}

/// Whether the signed-in caller's active organization allows AI (no
/// organization, or no policy row: allowed). Only `authenticated` may read
/// policies; anonymous visitors have no organization.
pub async fn organization_allows(tx: &Tx<'_>) -> Result<bool, DbError> {
    Ok(fetch_organization_policy(tx)
        .await?
        .is_none_or(|policy| policy.ai_allowed))
}

/// Sets the active organization's policy; only its admins may (RLS).
pub async fn set_organization_policy(tx: &Tx<'_>, ai_allowed: bool) -> Result<bool, DbError> {
    Ok(write_organization_policy(tx, ai_allowed).await?.ai_allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(mode: AiMode, overrides: &[(&str, AiMode)], consent: Option<&str>) -> AiPreferences {
        AiPreferences {
            mode,
            field_overrides: overrides.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            consent_version: consent.map(str::to_string),
            chosen_at: Utc::now(),
        }
    }

    #[test]
    fn a_field_override_wins_over_the_general_mode_and_consent_is_required() {
        let on = prefs(
            AiMode::Suggest,
            &[("goals.primaryGoal", AiMode::Off)],
            Some("v1"),
        );
        assert!(!on.allows("goals", "primaryGoal"));
        assert!(on.allows("profile", "jobRole"));
        let off = prefs(
            AiMode::Off,
            &[("goals.primaryGoal", AiMode::Suggest)],
            Some("v1"),
        );
        assert!(off.allows("goals", "primaryGoal"));
        assert!(!off.allows("profile", "jobRole"));
        assert!(!prefs(AiMode::Suggest, &[], None).allows("goals", "primaryGoal"));
    }
}
