-- Foundation: roles, the `onboarding` schema, its tables and their Row Level Security.
--
-- How a request reaches a row: the application logs in as `onboarding_app`
-- (NOINHERIT, no table privileges of its own) and, inside every transaction,
-- switches to `anonymous` or `authenticated` with set_config('role', ..., true)
-- and publishes the caller in set_config('request.jwt.claims', ..., true).
-- Policies read the caller through the helper functions below, wrapped in
-- `(select ...)` so the planner evaluates them once per statement, not per row.
-- A transaction that forgets to switch roles can touch nothing: the login role
-- itself holds no privilege on any table.

-- Roles are cluster-wide, so several databases (one per test) share them and
-- two migrations may race to create them.
do $roles$
begin
  begin
    create role anonymous nologin noinherit;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    create role authenticated nologin noinherit;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    create role onboarding_app login noinherit nosuperuser nobypassrls nocreatedb nocreaterole;
  exception when duplicate_object or unique_violation then null;
  end;
end
$roles$;

-- Granted only when missing: GRANT takes a lock on pg_auth_members that a
-- concurrent migration of another database would otherwise contend for.
do $membership$
begin
  if not pg_has_role('onboarding_app', 'anonymous', 'member') then
    grant anonymous to onboarding_app;
  end if;
  if not pg_has_role('onboarding_app', 'authenticated', 'member') then
    grant authenticated to onboarding_app;
  end if;
exception when unique_violation then null;
end
$membership$;

create schema onboarding;
revoke all on schema onboarding from public;
grant usage on schema onboarding to anonymous, authenticated;
-- The login role may resolve names (so statements can be prepared once per
-- connection, before any transaction) but holds no privilege on any table:
-- executing anything still needs the switched role.
grant usage on schema onboarding to onboarding_app;

-- ---------------------------------------------------------------------------
-- Caller accessors. The claims are written by the backend from an already
-- verified caller; they are never a raw token.
-- ---------------------------------------------------------------------------
create function onboarding.request_claims() returns jsonb
  language sql stable parallel safe
as $$
  select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;

create function onboarding.current_user_id() returns text
  language sql stable parallel safe
as $$ select nullif(onboarding.request_claims() ->> 'sub', '') $$;

create function onboarding.current_session_id() returns text
  language sql stable parallel safe
as $$ select nullif(onboarding.request_claims() ->> 'session_id', '') $$;

create function onboarding.current_organization_id() returns text
  language sql stable parallel safe
as $$ select nullif(onboarding.request_claims() ->> 'org_id', '') $$;

-- The idempotency subject: the user when signed in, else the anonymous session.
create function onboarding.current_subject() returns text
  language sql stable parallel safe
as $$
  select coalesce('user:' || onboarding.current_user_id(), 'session:' || onboarding.current_session_id())
$$;

create function onboarding.touch_updated_at() returns trigger
  language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- ---------------------------------------------------------------------------
-- Tenants
-- ---------------------------------------------------------------------------
create table onboarding.organizations (
  -- The auth provider's organization id when it has one (Clerk's `org_...`),
  -- otherwise one generated when the wizard creates the organization.
  id          text primary key default gen_random_uuid()::text
              check (length(id) between 1 and 200),
  name        text not null check (length(name) between 1 and 200),
  slug        text not null unique check (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
  size        text,
  industry    text,
  website     text,
  created_by  text not null default onboarding.current_user_id(),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
create index organizations_created_by on onboarding.organizations (created_by);

create table onboarding.memberships (
  organization_id text not null references onboarding.organizations (id) on delete cascade,
  user_id         text not null check (length(user_id) between 1 and 200),
  role            text not null check (role in ('owner', 'admin', 'member')),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  primary key (organization_id, user_id)
);
create index memberships_user on onboarding.memberships (user_id, organization_id, role);

-- The organizations the caller belongs to (optionally only as owner or admin).
-- `set search_path` keeps the planner from inlining it: policies on
-- organizations and memberships refer to each other through it, and an inlined
-- body would make PostgreSQL expand those policies into each other forever.
create function onboarding.caller_organization_ids(admin_only boolean) returns setof text
  language sql stable parallel safe
  set search_path = pg_catalog
as $$
  select m.organization_id
  from onboarding.memberships m
  where m.user_id = onboarding.current_user_id()
    and (not admin_only or m.role in ('owner', 'admin'))
$$;

-- Whether the caller administers the organization active in their token.
-- Reads the caller's own memberships, which their policy lets them see, so it
-- needs no SECURITY DEFINER escape hatch.
create function onboarding.is_admin_of_current_organization() returns boolean
  language sql stable parallel safe
as $$
  select exists (
    select 1
    from onboarding.memberships m
    where m.organization_id = onboarding.current_organization_id()
      and m.user_id = onboarding.current_user_id()
      and m.role in ('owner', 'admin')
  )
$$;

create table onboarding.user_profiles (
  user_id     text primary key default onboarding.current_user_id()
              check (length(user_id) between 1 and 200),
  full_name   text,
  job_role    text,
  timezone    text,
  locale      text,
  notifications jsonb not null default '{}',
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

create table onboarding.invitations (
  id              uuid primary key default gen_random_uuid(),
  organization_id text not null references onboarding.organizations (id) on delete cascade,
  email           text not null check (length(email) between 3 and 320),
  role            text not null default 'member' check (role in ('admin', 'member')),
  invited_by      text not null default onboarding.current_user_id(),
  status          text not null default 'pending' check (status in ('pending', 'accepted', 'revoked')),
  expires_at      timestamptz not null default now() + interval '14 days',
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create unique index invitations_organization_email on onboarding.invitations (organization_id, lower(email));

-- ---------------------------------------------------------------------------
-- Anonymous sessions. Only a SHA-256 of the session id is stored, so a leaked
-- table gives no usable cookie.
-- ---------------------------------------------------------------------------
create table onboarding.anonymous_sessions (
  id_hash             text primary key check (id_hash ~ '^[0-9a-f]{64}$'),
  last_seen_at        timestamptz not null default now(),
  expires_at          timestamptz not null default now() + interval '30 days',
  merged_into_user_id text,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now()
);
create index anonymous_sessions_expires on onboarding.anonymous_sessions (expires_at);

-- ---------------------------------------------------------------------------
-- Wizard progress: one row per owner (a user or an anonymous session) and flow.
-- `row_version` increases on every write and backs optimistic concurrency.
-- ---------------------------------------------------------------------------
create table onboarding.progress (
  id              uuid primary key default gen_random_uuid(),
  user_id         text check (length(user_id) between 1 and 200),
  session_id      text check (session_id ~ '^[0-9a-f]{64}$'),
  organization_id text,
  flow_id         text not null check (length(flow_id) between 1 and 100),
  flow_version    integer not null check (flow_version > 0),
  state           text not null default 'in_progress' check (state in ('in_progress', 'completed')),
  current_step    text,
  completed_steps text[] not null default '{}',
  row_version     bigint not null default 1 check (row_version > 0),
  started_at      timestamptz not null default now(),
  completed_at    timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint progress_has_exactly_one_owner check ((user_id is null) <> (session_id is null)),
  constraint progress_completed_has_timestamp check ((state = 'completed') = (completed_at is not null))
);
create unique index progress_user_flow on onboarding.progress (user_id, flow_id) where user_id is not null;
create unique index progress_session_flow on onboarding.progress (session_id, flow_id) where session_id is not null;
create index progress_organization_flow on onboarding.progress (organization_id, flow_id) where organization_id is not null;

create table onboarding.step_answers (
  progress_id  uuid not null references onboarding.progress (id) on delete cascade,
  step         text not null check (length(step) between 1 and 100),
  answers      jsonb not null check (jsonb_typeof(answers) = 'object'),
  status       text not null default 'draft' check (status in ('draft', 'completed')),
  flow_version integer not null check (flow_version > 0),
  version      bigint not null default 1 check (version > 0),
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now(),
  primary key (progress_id, step)
);

-- ---------------------------------------------------------------------------
-- Funnel analytics.
-- ---------------------------------------------------------------------------
create table onboarding.analytics_events (
  id              bigint generated always as identity primary key,
  user_id         text,
  session_id      text,
  organization_id text,
  flow_id         text not null check (length(flow_id) between 1 and 100),
  flow_version    integer not null check (flow_version > 0),
  step            text check (length(step) between 1 and 100),
  event_type      text not null check (event_type in (
                    'flow_started', 'step_viewed', 'step_completed', 'validation_failed',
                    'step_skipped', 'flow_completed', 'abandoned')),
  properties      jsonb not null default '{}' check (jsonb_typeof(properties) = 'object'),
  occurred_at     timestamptz not null,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint analytics_events_has_exactly_one_owner check ((user_id is null) <> (session_id is null))
);
create index analytics_events_organization_flow_time
  on onboarding.analytics_events (organization_id, flow_id, occurred_at) where organization_id is not null;
create index analytics_events_user on onboarding.analytics_events (user_id) where user_id is not null;
create index analytics_events_session on onboarding.analytics_events (session_id) where session_id is not null;

-- ---------------------------------------------------------------------------
-- Idempotency records (Stripe semantics): the first response to a key is
-- stored in the same transaction as the write and replayed for retries.
-- ---------------------------------------------------------------------------
create table onboarding.idempotency_keys (
  subject             text not null check (length(subject) between 1 and 300),
  key                 text not null check (length(key) between 1 and 255),
  request_method      text not null,
  request_path        text not null,
  request_fingerprint text not null,
  response_status     smallint not null,
  response_headers    jsonb not null default '{}',
  response_body       bytea not null,
  expires_at          timestamptz not null default now() + interval '24 hours',
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  primary key (subject, key)
);
create index idempotency_keys_expires on onboarding.idempotency_keys (expires_at);

-- ---------------------------------------------------------------------------
-- updated_at is the database's job.
-- ---------------------------------------------------------------------------
do $touch$
declare
  t regclass;
begin
  for t in
    select c.oid::regclass
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'onboarding' and c.relkind = 'r'
  loop
    execute format(
      'create trigger touch_updated_at before update on %s for each row execute function onboarding.touch_updated_at()',
      t);
  end loop;
end
$touch$;

-- ---------------------------------------------------------------------------
-- Row Level Security: enabled and forced on every table, so not even the
-- owner reads around it.
-- ---------------------------------------------------------------------------
do $rls$
declare
  t regclass;
begin
  for t in
    select c.oid::regclass
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'onboarding' and c.relkind in ('r', 'p')
  loop
    execute format('alter table %s enable row level security', t);
    execute format('alter table %s force row level security', t);
  end loop;
end
$rls$;

-- organizations: members and the creator see it; admins change it.
create policy organizations_select on onboarding.organizations
  for select to authenticated
  using (
    created_by = (select onboarding.current_user_id())
    -- = any(array(...)): evaluated once, and indexable alongside created_by.
    or id = any (array(select onboarding.caller_organization_ids(false)))
  );
create policy organizations_insert on onboarding.organizations
  for insert to authenticated
  with check (created_by = (select onboarding.current_user_id()));
create policy organizations_update on onboarding.organizations
  for update to authenticated
  using (id = any (array(select onboarding.caller_organization_ids(true))))
  with check (id = any (array(select onboarding.caller_organization_ids(true))));

-- memberships: a user sees their own; the creator of an organization makes
-- themselves its owner, and nobody else's membership.
create policy memberships_select on onboarding.memberships
  for select to authenticated
  using (user_id = (select onboarding.current_user_id()));
create policy memberships_insert_owner on onboarding.memberships
  for insert to authenticated
  with check (
    user_id = (select onboarding.current_user_id())
    and role = 'owner'
    and exists (select 1 from onboarding.organizations o
                where o.id = organization_id and o.created_by = (select onboarding.current_user_id()))
  );

-- user_profiles: one's own only.
create policy user_profiles_own on onboarding.user_profiles
  for all to authenticated
  using (user_id = (select onboarding.current_user_id()))
  with check (user_id = (select onboarding.current_user_id()));

-- invitations: the admins of the caller's active organization.
create policy invitations_admin on onboarding.invitations
  for all to authenticated
  using (organization_id = (select onboarding.current_organization_id())
         and (select onboarding.is_admin_of_current_organization()))
  with check (organization_id = (select onboarding.current_organization_id())
              and (select onboarding.is_admin_of_current_organization()));

-- anonymous_sessions: a session reaches its own row; a signed-in user who
-- presents the session (to merge it) reaches that row too.
create policy anonymous_sessions_own on onboarding.anonymous_sessions
  for all to anonymous, authenticated
  using (id_hash = (select onboarding.current_session_id()))
  with check (id_hash = (select onboarding.current_session_id()));

-- progress
create policy progress_session_own on onboarding.progress
  for all to anonymous
  using (user_id is null and session_id = (select onboarding.current_session_id()))
  with check (user_id is null and session_id = (select onboarding.current_session_id()));
create policy progress_user_own on onboarding.progress
  for all to authenticated
  using (user_id = (select onboarding.current_user_id()))
  with check (
    user_id = (select onboarding.current_user_id())
    and session_id is null
    and (organization_id is null or organization_id = (select onboarding.current_organization_id()))
  );
-- After sign-in the user may take over the drafts of the session they present.
create policy progress_user_merges_session on onboarding.progress
  for all to authenticated
  using (user_id is null and session_id = (select onboarding.current_session_id()));
create policy progress_admin_reads_organization on onboarding.progress
  for select to authenticated
  using (organization_id = (select onboarding.current_organization_id())
         and (select onboarding.is_admin_of_current_organization()));

-- step_answers: the owner of the progress row, never an admin (admins get
-- aggregates, not answers).
create policy step_answers_session_own on onboarding.step_answers
  for all to anonymous
  using (exists (select 1 from onboarding.progress p
                 where p.id = progress_id and p.user_id is null
                   and p.session_id = (select onboarding.current_session_id())))
  with check (exists (select 1 from onboarding.progress p
                      where p.id = progress_id and p.user_id is null
                        and p.session_id = (select onboarding.current_session_id())));
create policy step_answers_user_own on onboarding.step_answers
  for all to authenticated
  using (exists (select 1 from onboarding.progress p
                 where p.id = progress_id
                   and (p.user_id = (select onboarding.current_user_id())
                        or (p.user_id is null and p.session_id = (select onboarding.current_session_id())))))
  with check (exists (select 1 from onboarding.progress p
                      where p.id = progress_id
                        and (p.user_id = (select onboarding.current_user_id())
                             or (p.user_id is null and p.session_id = (select onboarding.current_session_id())))));

-- analytics_events: callers write and read their own; admins read their organization's.
create policy analytics_events_session_own on onboarding.analytics_events
  for all to anonymous
  using (user_id is null and session_id = (select onboarding.current_session_id()))
  with check (user_id is null and organization_id is null
              and session_id = (select onboarding.current_session_id()));
create policy analytics_events_user_own on onboarding.analytics_events
  for all to authenticated
  using (user_id = (select onboarding.current_user_id()))
  with check (user_id = (select onboarding.current_user_id())
              and organization_id is not distinct from (select onboarding.current_organization_id()));
create policy analytics_events_admin_reads_organization on onboarding.analytics_events
  for select to authenticated
  using (organization_id = (select onboarding.current_organization_id())
         and (select onboarding.is_admin_of_current_organization()));

-- idempotency_keys: the subject's own.
create policy idempotency_keys_own on onboarding.idempotency_keys
  for all to anonymous, authenticated
  using (subject = (select onboarding.current_subject()))
  with check (subject = (select onboarding.current_subject()));

-- ---------------------------------------------------------------------------
-- Privileges: the least each role needs. Policies narrow them to rows.
-- ---------------------------------------------------------------------------
grant select, insert, update, delete on
  onboarding.progress, onboarding.step_answers, onboarding.anonymous_sessions, onboarding.idempotency_keys
  to anonymous, authenticated;
grant select, insert on onboarding.analytics_events to anonymous, authenticated;
grant select, insert, update on onboarding.organizations, onboarding.user_profiles to authenticated;
grant select, insert on onboarding.memberships to authenticated;
grant select, insert, update, delete on onboarding.invitations to authenticated;
