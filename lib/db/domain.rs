//! The domain rows that completing onboarding produces: the user's profile,
//! the organization they create, their ownership of it, and invitations.

use tokio_postgres::types::Type;

use crate::db::{DbError, RlsContext, Statement, Tx};

const UPSERT_PROFILE: Statement = Statement::new(
    "insert into onboarding.user_profiles (user_id, full_name, job_role, timezone, locale, notifications)
     values (onboarding.current_user_id(), $1, $2, $3, $4, $5)
     on conflict (user_id) do update
       set full_name = excluded.full_name, job_role = excluded.job_role, timezone = excluded.timezone,
           locale = excluded.locale, notifications = excluded.notifications",
    &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB],
);

const CREATE_ORGANIZATION: Statement = Statement::new(
    "insert into onboarding.organizations (id, name, slug, size, industry, website)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (id) do nothing
     returning id",
    &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ],
);

const JOIN_AS_OWNER: Statement = Statement::new(
    "insert into onboarding.memberships (organization_id, user_id, role)
     values ($1, onboarding.current_user_id(), 'owner')
     on conflict (organization_id, user_id) do nothing",
    &[Type::TEXT],
);

const IS_ADMIN: Statement =
    Statement::new("select onboarding.is_admin_of_current_organization()", &[]);

const INVITE: Statement = Statement::new(
    "insert into onboarding.invitations (organization_id, email, role)
     values (onboarding.current_organization_id(), $1, $2)
     on conflict (organization_id, lower(email)) do nothing",
    &[Type::TEXT, Type::TEXT],
);

const SET_CONTEXT: Statement = Statement::new(
    "select set_config('request.jwt.claims', $1, true)",
    &[Type::TEXT],
);

/// The profile columns.
pub struct Profile<'a> {
    pub full_name: Option<&'a str>,
    pub job_role: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub notifications: &'a serde_json::Value,
}

pub async fn upsert_profile(tx: &Tx<'_>, profile: &Profile<'_>) -> Result<(), DbError> {
    tx.query(
        &UPSERT_PROFILE,
        &[
            &profile.full_name,
            &profile.job_role,
            &profile.timezone,
            &profile.locale,
            profile.notifications,
        ],
    )
    .await?;
    Ok(())
}

/// The organization columns.
pub struct Organization<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub slug: &'a str,
    pub size: Option<&'a str>,
    pub industry: Option<&'a str>,
    pub website: Option<&'a str>,
}

/// Creates the organization and makes the caller its owner; `false` when an
/// organization with that id exists already (then nothing changes).
pub async fn create_organization(tx: &Tx<'_>, org: &Organization<'_>) -> Result<bool, DbError> {
    let created = !tx
        .query(
            &CREATE_ORGANIZATION,
            &[
                &org.id,
                &org.name,
                &org.slug,
                &org.size,
                &org.industry,
                &org.website,
            ],
        )
        .await?
        .is_empty();
    if created {
        tx.query(&JOIN_AS_OWNER, &[&org.id]).await?;
    }
    Ok(created)
}

/// Makes `context` the transaction's context from here on (after the caller
/// created an organization, it becomes their active one).
pub async fn switch_context(tx: &Tx<'_>, context: &RlsContext) -> Result<(), DbError> {
    tx.query(&SET_CONTEXT, &[&context.claims()]).await?;
    Ok(())
}

/// Whether the caller administers their active organization.
pub async fn is_admin_of_active_organization(tx: &Tx<'_>) -> Result<bool, DbError> {
    Ok(tx.query_one(&IS_ADMIN, &[]).await?.get(0))
}

/// Invites `email` into the caller's active organization (once per address).
pub async fn invite(tx: &Tx<'_>, email: &str, role: &str) -> Result<(), DbError> {
    tx.query(&INVITE, &[&email, &role]).await?;
    Ok(())
}
