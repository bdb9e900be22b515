-- The status read and a step's read, each as one statement that sets the
-- caller's context itself, in place of BEGIN, the context select, the query
-- and COMMIT.
--
-- Why: the four statements of a framed read are four protocol exchanges, each
-- ended by a Sync that PostgreSQL answers with its own ReadyForQuery and its
-- own write to the socket, and each parsed and answered by the application.
-- One call is one exchange in an implicit transaction. Behind a
-- transaction-mode pooler, where statements are unnamed, it is also one
-- statement to parse and plan instead of four: the query inside is planned
-- once per server connection by PL/pgSQL, the call is all that is planned per
-- request. They replace the functions of V20261201000800 (the query alone,
-- behind a pooler), which stay for the instances of the previous release
-- that still call them while a deployment rolls out.
--
-- Isolation is unchanged: the functions are SECURITY INVOKER; they switch to
-- the caller's role (`anonymous` or `authenticated`, which the login role is
-- a member of, as for the context select) and publish the caller's claims
-- with `set_config(..., true)`, then run the query under that role's Row
-- Level Security policies. Only the login role may execute them.
--
-- Nothing of the caller outlives the call: RETURN QUERY runs its query to
-- the end and keeps the rows, and the role, the claims and the plan cache
-- mode are then set back to what they were before the call. In its own
-- implicit transaction, as the application sends it, that transaction's end
-- would undo them anyway; inside a longer transaction they would otherwise
-- hold for the statements after it. (An error aborts the transaction, and
-- with it the settings.)
--
-- `#variable_conflict use_column`: the output columns share names with the
-- table's.

create function onboarding.own_progress_with_answers_as(p_role text, p_claims text, p_flow_id text)
returns table (
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
begin
  perform set_config('role', p_role, true),
          set_config('request.jwt.claims', p_claims, true),
          set_config('plan_cache_mode', 'force_generic_plan', true);
  return query
    select p.id, p.user_id, p.organization_id, p.flow_id, p.flow_version, p.state,
           p.current_step, p.completed_steps, p.row_version, p.updated_at,
           coalesce((select jsonb_object_agg(a.step, a.answers)
                     from onboarding.step_answers a
                     where a.progress_id = p.id), '{}')
    from onboarding.progress p
    where p.flow_id = p_flow_id
      and (p.user_id = (select onboarding.current_user_id())
           or (p.session_id = (select onboarding.current_session_id())
               and (select onboarding.current_user_id()) is null));
  perform set_config('role', v_role, true),
          set_config('request.jwt.claims', v_claims, true),
          set_config('plan_cache_mode', v_plan_cache_mode, true);
end
$$;

comment on function onboarding.own_progress_with_answers_as(text, text, text) is
  'The status read in one statement: runs as the caller''s role with the caller''s claims, then sets back the ones before the call; returns the caller''s progress row for a flow and its answers by step.';

create function onboarding.own_step_answer_as(p_role text, p_claims text, p_flow_id text, p_step text)
returns table (
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
begin
  perform set_config('role', p_role, true),
          set_config('request.jwt.claims', p_claims, true),
          set_config('plan_cache_mode', 'force_generic_plan', true);
  return query
    select a.step, a.answers, a.status, a.flow_version, a.version, a.updated_at
    from onboarding.step_answers a
    join onboarding.progress p on p.id = a.progress_id
    where p.flow_id = p_flow_id and a.step = p_step
      and (p.user_id = (select onboarding.current_user_id())
           or (p.session_id = (select onboarding.current_session_id())
               and (select onboarding.current_user_id()) is null));
  perform set_config('role', v_role, true),
          set_config('request.jwt.claims', v_claims, true),
          set_config('plan_cache_mode', v_plan_cache_mode, true);
end
$$;

comment on function onboarding.own_step_answer_as(text, text, text, text) is
  'A step''s read in one statement: runs as the caller''s role with the caller''s claims, then sets back the ones before the call; returns the caller''s saved answer to one step of a flow.';

revoke all on function onboarding.own_progress_with_answers_as(text, text, text) from public;
revoke all on function onboarding.own_step_answer_as(text, text, text, text) from public;
grant execute on function onboarding.own_progress_with_answers_as(text, text, text) to onboarding_app;
grant execute on function onboarding.own_step_answer_as(text, text, text, text) to onboarding_app;
