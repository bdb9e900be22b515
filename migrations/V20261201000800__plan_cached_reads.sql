-- The two reads behind every navigation of the wizard, the status read (the
-- caller's progress row with all its answers) and a step's saved answer, as
-- PL/pgSQL functions, for connections that cannot keep prepared statements.
--
-- Why: behind a transaction-mode pooler (Neon's, Supabase's, PgBouncer) the
-- application sends its statements unnamed, so PostgreSQL parses and plans
-- each one on every request, and planning these queries with their Row Level
-- Security policies costs several times running them. PL/pgSQL keeps the
-- plan of each query it runs for the life of the server connection, whatever
-- the client's protocol, so a pooled request plans only the call. With
-- prepared statements the application sends the queries themselves
-- (`Statement::when_unnamed` in lib/db/mod.rs), which is cheaper still.
--
-- The functions are SECURITY INVOKER (the default): they run as the caller's
-- role under the same policies as the statements they stand for, which stay
-- the only isolation. A kept plan belongs to the role it was made for;
-- PostgreSQL plans again when another role calls on the same connection.
-- `#variable_conflict use_column`: the output columns share names with the
-- table's.

create function onboarding.own_progress_with_answers(p_flow_id text)
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
language plpgsql stable
as $$
#variable_conflict use_column
begin
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
end
$$;

comment on function onboarding.own_progress_with_answers(text) is
  'The caller''s progress row for a flow and its answers by step (the status read); plan cached per connection.';

create function onboarding.own_step_answer(p_flow_id text, p_step text)
returns table (
  step         text,
  answers      jsonb,
  status       text,
  flow_version integer,
  version      bigint,
  updated_at   timestamptz
)
language plpgsql stable
as $$
#variable_conflict use_column
begin
  return query
    select a.step, a.answers, a.status, a.flow_version, a.version, a.updated_at
    from onboarding.step_answers a
    join onboarding.progress p on p.id = a.progress_id
    where p.flow_id = p_flow_id and a.step = p_step
      and (p.user_id = (select onboarding.current_user_id())
           or (p.session_id = (select onboarding.current_session_id())
               and (select onboarding.current_user_id()) is null));
end
$$;

comment on function onboarding.own_step_answer(text, text) is
  'The caller''s saved answer to one step of a flow (GET of a step); plan cached per connection.';
