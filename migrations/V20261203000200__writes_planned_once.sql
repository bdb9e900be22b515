-- The statements of a step's save, each as a PL/pgSQL function, for
-- connections that cannot keep prepared statements.
--
-- Why: behind a transaction-mode pooler the application sends its
-- statements unnamed, so PostgreSQL plans each one on every request. For a
-- save (the caller's progress row locked, every answer of it, the answer
-- replaced or inserted, the progress updated), planning with the Row Level
-- Security policies cost about 3.7 ms of the server's CPU per save against
-- 1.2 ms for all of a save with prepared statements (`PUT` at 64
-- connections, README: Poolers). PL/pgSQL keeps the plan of each query it
-- runs for the life of the server connection, so a pooled save plans only
-- the calls. With prepared statements the application sends the statements
-- themselves (`Statement::when_unnamed` in lib/db/mod.rs).
--
-- Each function runs exactly the statement it stands for, with the same
-- parameters in the same order and the same columns out. They are SECURITY
-- INVOKER (the default): they run as the caller's role under the same
-- policies as the statements, which stay the only isolation, and grant
-- nothing the caller's role could not do with the statement itself.
-- `#variable_conflict use_column`: the output columns share names with the
-- tables'.

create function onboarding.own_progress_for_update(p_flow_id text)
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
  updated_at      timestamptz
)
language plpgsql
as $$
#variable_conflict use_column
begin
  return query
    select p.id, p.user_id, p.organization_id, p.flow_id, p.flow_version, p.state,
           p.current_step, p.completed_steps, p.row_version, p.updated_at
    from onboarding.progress p
    where p.flow_id = p_flow_id
      and (p.user_id = (select onboarding.current_user_id())
           or (p.session_id = (select onboarding.current_session_id())
               and (select onboarding.current_user_id()) is null))
    for update;
end
$$;

comment on function onboarding.own_progress_for_update(text) is
  'The caller''s progress row for a flow, locked (the first statement of a save); plan cached per connection.';

create function onboarding.answers_of_progress(p_progress_id uuid)
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
    where a.progress_id = p_progress_id
    order by a.step;
end
$$;

comment on function onboarding.answers_of_progress(uuid) is
  'Every answer of a progress row the caller may read, by step; plan cached per connection.';

create function onboarding.insert_step_answer(
  p_progress_id uuid, p_step text, p_answers jsonb, p_status text, p_flow_version integer)
returns table (
  step         text,
  answers      jsonb,
  status       text,
  flow_version integer,
  version      bigint,
  updated_at   timestamptz
)
language plpgsql
as $$
#variable_conflict use_column
begin
  return query
    with inserted as (
      insert into onboarding.step_answers (progress_id, step, answers, status, flow_version)
      values (p_progress_id, p_step, p_answers, p_status, p_flow_version)
      on conflict (progress_id, step) do nothing
      returning step, answers, status, flow_version, version, updated_at
    )
    select * from inserted;
end
$$;

comment on function onboarding.insert_step_answer(uuid, text, jsonb, text, integer) is
  'A step''s first answer; no row when one exists already; plan cached per connection.';

create function onboarding.replace_step_answer_if_version(
  p_progress_id uuid, p_step text, p_answers jsonb, p_status text, p_flow_version integer,
  p_version bigint)
returns table (
  step         text,
  answers      jsonb,
  status       text,
  flow_version integer,
  version      bigint,
  updated_at   timestamptz
)
language plpgsql
as $$
#variable_conflict use_column
begin
  return query
    with replaced as (
      update onboarding.step_answers a
      set answers = p_answers, status = p_status, flow_version = p_flow_version,
          version = a.version + 1
      where a.progress_id = p_progress_id and a.step = p_step and a.version = p_version
      returning a.step, a.answers, a.status, a.flow_version, a.version, a.updated_at
    )
    select * from replaced;
end
$$;

comment on function onboarding.replace_step_answer_if_version(uuid, text, jsonb, text, integer, bigint) is
  'Replaces a step''s answer if its version is still the one the writer read; plan cached per connection.';

create function onboarding.record_step(
  p_id uuid, p_completed_steps text[], p_current_step text, p_flow_version integer)
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
  updated_at      timestamptz
)
language plpgsql
as $$
#variable_conflict use_column
begin
  return query
    with recorded as (
      update onboarding.progress p
      set completed_steps = p_completed_steps, current_step = p_current_step,
          flow_version = p_flow_version, row_version = p.row_version + 1
      where p.id = p_id
      returning p.id, p.user_id, p.organization_id, p.flow_id, p.flow_version, p.state,
                p.current_step, p.completed_steps, p.row_version, p.updated_at
    )
    select * from recorded;
end
$$;

comment on function onboarding.record_step(uuid, text[], text, integer) is
  'Records the completed steps and the current one (the last statement of a save); plan cached per connection.';

-- Only the roles a save runs as; the login role holds no privilege on the
-- tables, so it could do nothing with them either.
revoke all on function onboarding.own_progress_for_update(text) from public;
revoke all on function onboarding.answers_of_progress(uuid) from public;
revoke all on function onboarding.insert_step_answer(uuid, text, jsonb, text, integer) from public;
revoke all on function onboarding.replace_step_answer_if_version(uuid, text, jsonb, text, integer, bigint) from public;
revoke all on function onboarding.record_step(uuid, text[], text, integer) from public;
grant execute on function
  onboarding.own_progress_for_update(text),
  onboarding.answers_of_progress(uuid),
  onboarding.insert_step_answer(uuid, text, jsonb, text, integer),
  onboarding.replace_step_answer_if_version(uuid, text, jsonb, text, integer, bigint),
  onboarding.record_step(uuid, text[], text, integer)
  to anonymous, authenticated;
