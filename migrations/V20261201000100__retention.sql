-- Retention: what has outlived its use is deleted by the nightly purge
-- (`GET /api/cron/purge`, a Vercel Cron Job), in bounded batches:
--
--   - anonymous sessions past `expires_at`, with the drafts only they owned
--     (their `progress` rows; `step_answers` go with them by cascade);
--   - idempotency records past `expires_at` (24 hours after they were
--     stored; they are never replayed after it);
--   - analytics events older than ANALYTICS_RETENTION_DAYS (by `occurred_at`,
--     what the funnel reads);
--   - AI suggestions older than AI_SUGGESTION_RETENTION_DAYS (by `created_at`).
--
-- Purging everyone's rows crosses every tenant, which Row Level Security
-- forbids the application's roles on purpose. The deliberate way through is
-- these SECURITY DEFINER functions, owned by `onboarding_purger`: a role
-- nobody logs in as and nobody is a member of, neither superuser nor
-- BYPASSRLS, whose own policies below let it see and delete only what is past
-- its retention. So they work where the migrations' role cannot bypass Row
-- Level Security (managed databases), and even a mistake in them cannot reach
-- a live row. They are executable only by the login role `onboarding_app`
-- (never by `anonymous` or `authenticated`, which a request's transaction
-- switches to), each deleting at most one batch and returning how many rows
-- it deleted.
--
-- Each batch selects its rows through an index in index order, `limit`ed and
-- `for update skip locked`: two purges running at once take disjoint rows,
-- neither waits for the other, and a purge cut short leaves the rest for the
-- next run. The plans are made for each call's own values
-- (`plan_cache_mode = force_custom_plan`), so a generic plan cannot trade the
-- index for a scan of the table.

-- `anonymous_sessions (expires_at)` and `idempotency_keys (expires_at)` exist
-- since the foundation; a session's drafts are found through
-- `progress_session_flow (session_id, flow_id)`.
create index analytics_events_occurred on onboarding.analytics_events (occurred_at);
create index ai_suggestions_created on onboarding.ai_suggestions (created_at);

-- The role the purge runs as. Cluster-wide, like the foundation's roles.
do $roles$
begin
  begin
    create role onboarding_purger nologin noinherit nosuperuser nobypassrls nocreatedb nocreaterole;
  exception when duplicate_object or unique_violation then null;
  end;
end
$roles$;

grant usage on schema onboarding to onboarding_purger;
-- UPDATE only because a batch locks its rows (`for update`) before it
-- deletes them; the purger changes no row.
grant select, update, delete on
  onboarding.anonymous_sessions, onboarding.progress, onboarding.idempotency_keys,
  onboarding.analytics_events, onboarding.ai_suggestions
  to onboarding_purger;

-- What the purger may see and delete: only rows past their retention. A
-- session's answers go by the foreign key's cascade with their progress row.
-- The events and suggestions' retention is a setting of at least one day; the
-- policies hold that floor, the functions the setting.
create policy anonymous_sessions_purge on onboarding.anonymous_sessions
  for all to onboarding_purger
  using (expires_at < now());
create policy progress_purge on onboarding.progress
  for all to onboarding_purger
  using (user_id is null and exists (
    select 1 from onboarding.anonymous_sessions s
    where s.id_hash = progress.session_id and s.expires_at < now()));
create policy idempotency_keys_purge on onboarding.idempotency_keys
  for all to onboarding_purger
  using (expires_at < now());
create policy analytics_events_purge on onboarding.analytics_events
  for all to onboarding_purger
  using (occurred_at < now() - interval '1 day');
create policy ai_suggestions_purge on onboarding.ai_suggestions
  for all to onboarding_purger
  using (created_at < now() - interval '1 day');

-- Checks a batch size. Called inside the functions below.
create function onboarding.retention_guard(batch_size integer) returns void
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
as $$
begin
  if batch_size is null or batch_size not between 1 and 10000 then
    raise exception 'batch size % is outside 1..10000', batch_size
      using errcode = 'invalid_parameter_value';
  end if;
end
$$;

-- Expired anonymous sessions and the drafts only they owned. A session's
-- progress rows are not tied to it by a foreign key (a merge hands them to a
-- user, who then owns them alone); those still owned by the session go with
-- it, and their step answers by cascade.
create function onboarding.purge_expired_sessions(batch_size integer) returns integer
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_custom_plan
as $$
declare
  doomed text[];
  purged integer;
begin
  perform onboarding.retention_guard(batch_size);
  select coalesce(array_agg(batch.id_hash), '{}') into doomed
  from (
    select s.id_hash
    from onboarding.anonymous_sessions s
    where s.expires_at < now()
    order by s.expires_at
    limit batch_size
    for update skip locked
  ) batch;
  delete from onboarding.progress p
  where p.session_id = any (doomed) and p.user_id is null;
  delete from onboarding.anonymous_sessions s
  where s.id_hash = any (doomed);
  get diagnostics purged = row_count;
  return purged;
end
$$;

-- Idempotency records past their replay window. Their key has two columns;
-- the rows are found again by their `ctid`, which cannot change while the
-- batch holds their locks.
create function onboarding.purge_expired_idempotency_keys(batch_size integer) returns integer
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_custom_plan
as $$
declare
  doomed tid[];
  purged integer;
begin
  perform onboarding.retention_guard(batch_size);
  select coalesce(array_agg(batch.ctid), '{}') into doomed
  from (
    select k.ctid
    from onboarding.idempotency_keys k
    where k.expires_at < now()
    order by k.expires_at
    limit batch_size
    for update skip locked
  ) batch;
  delete from onboarding.idempotency_keys k
  where k.ctid = any (doomed);
  get diagnostics purged = row_count;
  return purged;
end
$$;

-- Analytics events that happened more than `retention_days` days ago.
create function onboarding.purge_old_events(retention_days integer, batch_size integer) returns integer
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_custom_plan
as $$
declare
  doomed bigint[];
  purged integer;
begin
  perform onboarding.retention_guard(batch_size);
  if retention_days is null or retention_days < 1 then
    raise exception 'retention of % days is less than one day', retention_days
      using errcode = 'invalid_parameter_value';
  end if;
  select coalesce(array_agg(batch.id), '{}') into doomed
  from (
    select e.id
    from onboarding.analytics_events e
    where e.occurred_at < now() - make_interval(days => retention_days)
    order by e.occurred_at
    limit batch_size
    for update skip locked
  ) batch;
  delete from onboarding.analytics_events e
  where e.id = any (doomed);
  get diagnostics purged = row_count;
  return purged;
end
$$;

-- AI suggestions made more than `retention_days` days ago, whatever their status.
create function onboarding.purge_old_suggestions(retention_days integer, batch_size integer) returns integer
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_custom_plan
as $$
declare
  doomed uuid[];
  purged integer;
begin
  perform onboarding.retention_guard(batch_size);
  if retention_days is null or retention_days < 1 then
    raise exception 'retention of % days is less than one day', retention_days
      using errcode = 'invalid_parameter_value';
  end if;
  select coalesce(array_agg(batch.id), '{}') into doomed
  from (
    select a.id
    from onboarding.ai_suggestions a
    where a.created_at < now() - make_interval(days => retention_days)
    order by a.created_at
    limit batch_size
    for update skip locked
  ) batch;
  delete from onboarding.ai_suggestions a
  where a.id = any (doomed);
  get diagnostics purged = row_count;
  return purged;
end
$$;

-- Functions are executable by PUBLIC by default: only the login role may run
-- these, and only outside a request's switched role.
revoke all on function
  onboarding.retention_guard(integer),
  onboarding.purge_expired_sessions(integer),
  onboarding.purge_expired_idempotency_keys(integer),
  onboarding.purge_old_events(integer, integer),
  onboarding.purge_old_suggestions(integer, integer)
  from public;
grant execute on function
  onboarding.purge_expired_sessions(integer),
  onboarding.purge_expired_idempotency_keys(integer),
  onboarding.purge_old_events(integer, integer),
  onboarding.purge_old_suggestions(integer, integer)
  to onboarding_app;

-- The purger owns the functions (changing an owner to a role needs CREATE on
-- the schema for that role, for the length of the change).
grant create on schema onboarding to onboarding_purger;
alter function onboarding.retention_guard(integer) owner to onboarding_purger;
alter function onboarding.purge_expired_sessions(integer) owner to onboarding_purger;
alter function onboarding.purge_expired_idempotency_keys(integer) owner to onboarding_purger;
alter function onboarding.purge_old_events(integer, integer) owner to onboarding_purger;
alter function onboarding.purge_old_suggestions(integer, integer) owner to onboarding_purger;
revoke create on schema onboarding from onboarding_purger;
