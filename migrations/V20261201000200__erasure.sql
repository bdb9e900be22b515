-- Erasure and export (README: "Erasure and export").
--
-- Everything of a user is erased by one function, onboarding.erase_caller(),
-- which erases the user the transaction's context names
-- (onboarding.current_user_id()) and takes no parameter. It is SECURITY
-- DEFINER, owned by `onboarding_eraser`: a role nobody logs in as and nobody
-- is a member of, neither superuser nor BYPASSRLS, so every delete it makes
-- passes through that role's policies below, each keyed on the same user.
-- Two ways in:
--
--   onboarding.erase_caller()        a signed-in request erasing its own user
--                                    (EXECUTE: authenticated);
--   onboarding.erase_user(user_id)   the identity provider's user.deleted
--                                    webhook, which has no user token: names
--                                    the user for the length of the call and
--                                    erases them through erase_caller()
--                                    (EXECUTE: onboarding_app, the login role).
--
-- What goes (the organization rule is README's):
--   - the user's progress and answers, profile, AI preferences and
--     suggestions, analytics events, idempotency records, memberships and the
--     invitations they sent;
--   - the anonymous sessions merged into the user, and what those sessions
--     still own (drafts, events, AI preferences and suggestions, idempotency
--     records): merged_into_user_id ties them to the user;
--   - the organizations they alone own, with every membership, invitation and
--     AI policy of those organizations.
-- What stays, without the user's id: an organization that has another owner
-- (`created_by` becomes null) and its AI policy (`updated_by` becomes null).

-- ---------------------------------------------------------------------------
-- The role the erasure runs as. Cluster-wide, like the foundation's roles.
-- ---------------------------------------------------------------------------
do $roles$
begin
  begin
    create role onboarding_eraser nologin noinherit nosuperuser nobypassrls nocreatedb nocreaterole;
  exception when duplicate_object or unique_violation then null;
  end;
end
$roles$;

grant usage on schema onboarding to onboarding_eraser;

-- Attribution that outlives the user is cleared, not kept.
alter table onboarding.organizations alter column created_by drop not null;
alter table onboarding.organization_ai_policies alter column updated_by drop not null;

-- The erasure finds a user's rows by these; so does the inviter's own read.
create index anonymous_sessions_merged_into on onboarding.anonymous_sessions (merged_into_user_id)
  where merged_into_user_id is not null;
create index invitations_invited_by on onboarding.invitations (invited_by);
create index organization_ai_policies_updated_by on onboarding.organization_ai_policies (updated_by);

-- ---------------------------------------------------------------------------
-- What the eraser reaches, besides the user's own rows. Each reads the
-- caller through onboarding.current_user_id(). Not inlined (`set
-- search_path`), as the foundation's caller_organization_ids: the eraser's
-- policies refer to them.
-- ---------------------------------------------------------------------------

-- The anonymous sessions whose drafts were merged into the caller.
create function onboarding.sessions_merged_into_caller() returns setof text
  language sql stable parallel safe
  set search_path = pg_catalog
as $$
  select s.id_hash
  from onboarding.anonymous_sessions s
  where s.merged_into_user_id = onboarding.current_user_id()
$$;

-- The organizations the caller owns and nobody else does. Needs to see every
-- owner of those organizations, which only the eraser's policy on
-- memberships allows; so only the eraser may run it.
create function onboarding.organizations_solely_owned_by_caller() returns setof text
  language sql stable parallel safe
  set search_path = pg_catalog
as $$
  select m.organization_id
  from onboarding.memberships m
  where m.user_id = onboarding.current_user_id()
    and m.role = 'owner'
    and not exists (
      select 1 from onboarding.memberships other
      where other.organization_id = m.organization_id
        and other.role = 'owner'
        and other.user_id <> m.user_id)
$$;

-- ---------------------------------------------------------------------------
-- The eraser's policies. Privileges (below) let it select and delete, and
-- update only the two attribution columns it clears.
-- ---------------------------------------------------------------------------
create policy anonymous_sessions_erasure on onboarding.anonymous_sessions
  for all to onboarding_eraser
  using (merged_into_user_id = (select onboarding.current_user_id()));

create policy progress_erasure on onboarding.progress
  for all to onboarding_eraser
  using (user_id = (select onboarding.current_user_id())
         or (user_id is null
             and session_id = any (array(select onboarding.sessions_merged_into_caller()))));

-- The answers of the progress rows the eraser reaches (the subquery is
-- itself under progress_erasure).
create policy step_answers_erasure on onboarding.step_answers
  for all to onboarding_eraser
  using (exists (select 1 from onboarding.progress p where p.id = progress_id));

create policy user_profiles_erasure on onboarding.user_profiles
  for all to onboarding_eraser
  using (user_id = (select onboarding.current_user_id()));

create policy ai_preferences_erasure on onboarding.ai_preferences
  for all to onboarding_eraser
  using (user_id = (select onboarding.current_user_id())
         or (user_id is null
             and session_id = any (array(select onboarding.sessions_merged_into_caller()))));

create policy ai_suggestions_erasure on onboarding.ai_suggestions
  for all to onboarding_eraser
  using (user_id = (select onboarding.current_user_id())
         or (user_id is null
             and session_id = any (array(select onboarding.sessions_merged_into_caller()))));

create policy analytics_events_erasure on onboarding.analytics_events
  for all to onboarding_eraser
  using (user_id = (select onboarding.current_user_id())
         or (user_id is null
             and session_id = any (array(select onboarding.sessions_merged_into_caller()))));

create policy idempotency_keys_erasure on onboarding.idempotency_keys
  for all to onboarding_eraser
  using (subject = 'user:' || (select onboarding.current_user_id())
         or subject = any (array(select 'session:' || s
                                 from onboarding.sessions_merged_into_caller() s)));

-- Every membership is visible to the eraser, so it can tell whether the user
-- is an organization's only owner; it deletes only the user's own (those of
-- an organization it deletes go with the organization).
create policy memberships_erasure_reads on onboarding.memberships
  for select to onboarding_eraser
  using (true);
create policy memberships_erasure on onboarding.memberships
  for delete to onboarding_eraser
  using (user_id = (select onboarding.current_user_id()));

-- Organizations and their AI policies: the eraser deletes those the user
-- alone owns and clears the user's id from the others. An update must let
-- its new row pass the select policies too, so reading these is not keyed.
create policy organizations_erasure_reads on onboarding.organizations
  for select to onboarding_eraser
  using (true);
create policy organizations_erasure on onboarding.organizations
  for delete to onboarding_eraser
  using (id = any (array(select onboarding.organizations_solely_owned_by_caller())));
create policy organizations_erasure_clears_creator on onboarding.organizations
  for update to onboarding_eraser
  using (created_by = (select onboarding.current_user_id()))
  with check (created_by is null);

create policy invitations_erasure on onboarding.invitations
  for all to onboarding_eraser
  using (invited_by = (select onboarding.current_user_id())
         or organization_id = any (array(select onboarding.organizations_solely_owned_by_caller())));

create policy organization_ai_policies_erasure_reads on onboarding.organization_ai_policies
  for select to onboarding_eraser
  using (true);
create policy organization_ai_policies_erasure on onboarding.organization_ai_policies
  for delete to onboarding_eraser
  using (organization_id = any (array(select onboarding.organizations_solely_owned_by_caller())));
create policy organization_ai_policies_erasure_clears_updater on onboarding.organization_ai_policies
  for update to onboarding_eraser
  using (updated_by = (select onboarding.current_user_id()))
  with check (updated_by is null);

grant select, delete on
  onboarding.anonymous_sessions, onboarding.progress, onboarding.step_answers,
  onboarding.user_profiles, onboarding.ai_preferences, onboarding.ai_suggestions,
  onboarding.analytics_events, onboarding.idempotency_keys, onboarding.memberships,
  onboarding.organizations, onboarding.invitations, onboarding.organization_ai_policies
  to onboarding_eraser;
grant update (created_by) on onboarding.organizations to onboarding_eraser;
grant update (updated_by) on onboarding.organization_ai_policies to onboarding_eraser;

-- ---------------------------------------------------------------------------
-- Export: a user reads the invitations they sent, wherever they sent them
-- (invitations_admin shows only the active organization's, to its admins).
-- ---------------------------------------------------------------------------
create policy invitations_inviter_reads on onboarding.invitations
  for select to authenticated
  using (invited_by = (select onboarding.current_user_id()));

-- ---------------------------------------------------------------------------
-- The erasure. Returns what it did: {"deleted": {table: rows},
-- "anonymized": {table: rows}}, keys in camelCase as the API answers them.
-- Erasing again finds nothing and returns zeros.
-- ---------------------------------------------------------------------------
create function onboarding.erase_caller() returns jsonb
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
as $$
declare
  me constant text := onboarding.current_user_id();
  owned text[];
  sole text[];
  merged text[];
  deleted jsonb := '{}';
  anonymized jsonb := '{}';
  member_rows bigint;
  n bigint;
begin
  if me is null then
    raise exception 'only a signed-in user can be erased'
      using errcode = 'insufficient_privilege';
  end if;

  -- Co-owners erased at the same time take turns per organization (in id
  -- order, so they cannot deadlock): the last to go sees no other owner and
  -- takes the organization with them.
  owned := array(select m.organization_id from onboarding.memberships m
                 where m.user_id = me and m.role = 'owner'
                 order by m.organization_id);
  perform pg_advisory_xact_lock(hashtextextended('onboarding.organization:' || o, 0))
  from unnest(owned) as o;

  sole := array(select onboarding.organizations_solely_owned_by_caller());
  merged := array(select onboarding.sessions_merged_into_caller());

  -- The organizations they alone own, with what hangs off them. Before the
  -- user's own memberships go: the policies tell a sole owner by them.
  delete from onboarding.invitations where organization_id = any (sole) or invited_by = me;
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('invitations', n);

  delete from onboarding.organization_ai_policies where organization_id = any (sole);
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('organizationAiPolicies', n);
  update onboarding.organization_ai_policies set updated_by = null where updated_by = me;
  get diagnostics n = row_count;
  anonymized := anonymized || jsonb_build_object('organizationAiPolicies', n);

  select count(*) into member_rows from onboarding.memberships where organization_id = any (sole);
  delete from onboarding.organizations where id = any (sole);
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('organizations', n);
  update onboarding.organizations set created_by = null where created_by = me;
  get diagnostics n = row_count;
  anonymized := anonymized || jsonb_build_object('organizations', n);

  -- Their memberships of organizations that stay.
  delete from onboarding.memberships where user_id = me;
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('memberships', member_rows + n);

  -- The wizard: theirs, and what the sessions merged into them still own.
  delete from onboarding.step_answers a
  using onboarding.progress p
  where p.id = a.progress_id
    and (p.user_id = me or (p.user_id is null and p.session_id = any (merged)));
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('stepAnswers', n);

  delete from onboarding.progress
  where user_id = me or (user_id is null and session_id = any (merged));
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('progress', n);

  delete from onboarding.user_profiles where user_id = me;
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('userProfiles', n);

  delete from onboarding.ai_suggestions
  where user_id = me or (user_id is null and session_id = any (merged));
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('aiSuggestions', n);

  delete from onboarding.ai_preferences
  where user_id = me or (user_id is null and session_id = any (merged));
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('aiPreferences', n);

  delete from onboarding.analytics_events
  where user_id = me or (user_id is null and session_id = any (merged));
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('analyticsEvents', n);

  delete from onboarding.idempotency_keys
  where subject = 'user:' || me
     or subject = any (array(select 'session:' || s from unnest(merged) s));
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('idempotencyKeys', n);

  delete from onboarding.anonymous_sessions where merged_into_user_id = me;
  get diagnostics n = row_count;
  deleted := deleted || jsonb_build_object('anonymousSessions', n);

  return jsonb_build_object('deleted', deleted, 'anonymized', anonymized);
end
$$;

-- The webhook's way in: the user is named by the identity provider's signed
-- event, not by a token. The claims are set for the length of the call only
-- (the `set` clause restores them when it returns).
create function onboarding.erase_user(user_id text) returns jsonb
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  set request.jwt.claims = '{}'
as $$
begin
  if user_id is null or length(user_id) not between 1 and 200 then
    raise exception 'a user id is 1 to 200 characters'
      using errcode = 'invalid_parameter_value';
  end if;
  perform set_config('request.jwt.claims', jsonb_build_object('sub', user_id)::text, true);
  return onboarding.erase_caller();
end
$$;

-- Owned by the eraser, so they run as it. Changing a function's owner needs
-- the new owner's CREATE on the schema (a superuser is exempt); it is granted
-- for the change and taken back.
grant create on schema onboarding to onboarding_eraser;
alter function onboarding.sessions_merged_into_caller() owner to onboarding_eraser;
alter function onboarding.organizations_solely_owned_by_caller() owner to onboarding_eraser;
alter function onboarding.erase_caller() owner to onboarding_eraser;
alter function onboarding.erase_user(text) owner to onboarding_eraser;
revoke create on schema onboarding from onboarding_eraser;

revoke all on function onboarding.sessions_merged_into_caller() from public;
revoke all on function onboarding.organizations_solely_owned_by_caller() from public;
revoke all on function onboarding.erase_caller() from public;
revoke all on function onboarding.erase_user(text) from public;
grant execute on function onboarding.erase_caller() to authenticated;
grant execute on function onboarding.erase_user(text) to onboarding_app;
