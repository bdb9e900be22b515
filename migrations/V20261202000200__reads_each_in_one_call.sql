-- The status read and a step's read for several callers in one statement:
-- each caller's read runs in turn under that caller's role and claims, as
-- the one-call functions of V20261202000100 run one, and every row is tagged
-- with the 1-based position of the read it answers.
--
-- Why: behind a transaction-mode pooler statements are unnamed, so the server
-- parses and plans each call, and reads cannot be pipelined on one connection
-- (the pooler may give the server connection to another client at the end of
-- each implicit transaction). The application sends the reads that queue up
-- while others are being answered as one call of these functions
-- (lib/db/batched_read.rs): one statement to plan, one exchange, one wake-up
-- of the server's backend for all of them. pgbench through PgBouncer 1.18 in
-- transaction mode, 4 clients, the status read: about 6,000 to 7,000 reads/s
-- one call each, about 13,000 in calls of 8.
--
-- The query is the one-call function's, written again rather than calling
-- that function for each read: the nested call cost a sixth of the
-- throughput in the same measurement.
--
-- Isolation is the one-call functions': SECURITY INVOKER, the caller's role
-- (which the login role is a member of) and claims set with
-- `set_config(..., true)` before each read's query, the role, claims and
-- plan cache mode before the call set back after the last one. RETURN QUERY
-- runs each read's query to the end before the next read's settings are
-- made. Only the login role may execute them.

create function onboarding.own_progress_with_answers_each_as(p_roles text[], p_claims text[], p_flow_ids text[])
returns table (
  ord             integer,
  id              uuid,
  user_id         text,
  organization_id text,
  flow_id         text,
  flow_version    integer,
  state           text,
  current_step    text,
  completed_steps text[],
  row_version     bigint,
  updated_at      timestamptz,
  answers         jsonb
)
language plpgsql volatile
as $$
#variable_conflict use_column
declare
  v_role            text := current_setting('role');
  v_claims          text := coalesce(current_setting('request.jwt.claims', true), '');
  v_plan_cache_mode text := current_setting('plan_cache_mode');
  v_reads           integer := coalesce(cardinality(p_roles), 0);
begin
  if coalesce(cardinality(p_claims), 0) <> v_reads or coalesce(cardinality(p_flow_ids), 0) <> v_reads then
    raise exception 'one role, one claims and one flow per read' using errcode = '22023';
  end if;
  perform set_config('plan_cache_mode', 'force_generic_plan', true);
  for i in 1 .. v_reads loop
    perform set_config('role', p_roles[i], true),
            set_config('request.jwt.claims', p_claims[i], true);
    return query
      select i, p.id, p.user_id, p.organization_id, p.flow_id, p.flow_version, p.state,
             p.current_step, p.completed_steps, p.row_version, p.updated_at,
             coalesce((select jsonb_object_agg(a.step, a.answers)
                       from onboarding.step_answers a
                       where a.progress_id = p.id), '{}')
      from onboarding.progress p
      where p.flow_id = p_flow_ids[i]
        and (p.user_id = (select onboarding.current_user_id())
             or (p.session_id = (select onboarding.current_session_id())
                 and (select onboarding.current_user_id()) is null));
  end loop;
  perform set_config('role', v_role, true),
          set_config('request.jwt.claims', v_claims, true),
          set_config('plan_cache_mode', v_plan_cache_mode, true);
end
$$;

comment on function onboarding.own_progress_with_answers_each_as(text[], text[], text[]) is
  'The status read of several callers in one statement: each read runs as its caller''s role with its caller''s claims, its rows tagged with its position (ord); the role and claims before the call are set back after.';

create function onboarding.own_step_answer_each_as(p_roles text[], p_claims text[], p_flow_ids text[], p_steps text[])
returns table (
  ord          integer,
  step         text,
  answers      jsonb,
  status       text,
  flow_version integer,
  version      bigint,
  updated_at   timestamptz
)
language plpgsql volatile
as $$
#variable_conflict use_column
declare
  v_role            text := current_setting('role');
  v_claims          text := coalesce(current_setting('request.jwt.claims', true), '');
  v_plan_cache_mode text := current_setting('plan_cache_mode');
  v_reads           integer := coalesce(cardinality(p_roles), 0);
begin
  if coalesce(cardinality(p_claims), 0) <> v_reads or coalesce(cardinality(p_flow_ids), 0) <> v_reads
     or coalesce(cardinality(p_steps), 0) <> v_reads then
    raise exception 'one role, one claims, one flow and one step per read' using errcode = '22023';
  end if;
  perform set_config('plan_cache_mode', 'force_generic_plan', true);
  for i in 1 .. v_reads loop
    perform set_config('role', p_roles[i], true),
            set_config('request.jwt.claims', p_claims[i], true);
    return query
      select i, a.step, a.answers, a.status, a.flow_version, a.version, a.updated_at
      from onboarding.step_answers a
      join onboarding.progress p on p.id = a.progress_id
      where p.flow_id = p_flow_ids[i] and a.step = p_steps[i]
        and (p.user_id = (select onboarding.current_user_id())
             or (p.session_id = (select onboarding.current_session_id())
                 and (select onboarding.current_user_id()) is null));
  end loop;
  perform set_config('role', v_role, true),
          set_config('request.jwt.claims', v_claims, true),
          set_config('plan_cache_mode', v_plan_cache_mode, true);
end
$$;

comment on function onboarding.own_step_answer_each_as(text[], text[], text[], text[]) is
  'A step''s read of several callers in one statement: each read runs as its caller''s role with its caller''s claims, its rows tagged with its position (ord); the role and claims before the call are set back after.';

revoke all on function onboarding.own_progress_with_answers_each_as(text[], text[], text[]) from public;
revoke all on function onboarding.own_step_answer_each_as(text[], text[], text[], text[]) from public;
grant execute on function onboarding.own_progress_with_answers_each_as(text[], text[], text[]) to onboarding_app;
grant execute on function onboarding.own_step_answer_each_as(text[], text[], text[], text[]) to onboarding_app;
