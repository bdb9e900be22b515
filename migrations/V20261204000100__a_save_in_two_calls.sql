-- A step's save as two calls: the caller's progress row locked together with
-- every answer of it, then the answer stored together with the steps
-- recorded.
--
-- Why: each statement is a protocol exchange of its own that the server
-- parses, plans (behind a pooler, on every request) and starts an executor
-- for. With the statements inside these functions planned once per server
-- connection, that per-statement cost was what a pooled save still paid over
-- a direct one (README: Poolers). pgbench, unnamed statements, 16 clients,
-- the save as four calls against two calls like these (the first returning
-- the answers as one JSON object): PostgreSQL CPU per save 1,430 /
-- 1,074, 1,858 / 1,416, 1,606 / 1,088 and 1,373 / 1,186 µs, and with
-- prepared statements 1,370 / 966 and 1,153 / 1,013 µs. So both statement
-- modes send these calls.
--
-- Both are SECURITY INVOKER (the default): they run as the caller's role
-- under the same Row Level Security policies as the statements they replace,
-- which stay the only isolation. VOLATILE, so each statement inside takes
-- its own snapshot: the answers are read only once the row's lock is held,
-- and see whatever the lock's previous holder (another tab's save)
-- committed (tests/contract.rs). The functions of V20261203000200 and
-- V20261203000300 stay for the instances of the previous release while a
-- deployment rolls out, and for the merge that still records steps on its
-- own.
--
-- Both return rows of one type: the progress row's columns, then an
-- answer's, whose `flow_version` and `updated_at` are named
-- `answer_flow_version` and `answer_updated_at`.

create type onboarding.progress_with_answer as (
  id                  uuid,
  user_id             text,
  organization_id     text,
  flow_id             text,
  flow_version        integer,
  state               text,
  current_step        text,
  completed_steps     text[],
  row_version         bigint,
  updated_at          timestamptz,
  step                text,
  answers             jsonb,
  status              text,
  answer_flow_version integer,
  version             bigint,
  answer_updated_at   timestamptz
);

create function onboarding.own_progress_for_update_with_answers(p_flow_id text)
returns setof onboarding.progress_with_answer
language plpgsql volatile
as $$
declare
  locked onboarding.progress;
begin
  select p.* into locked
  from onboarding.progress p
  where p.flow_id = p_flow_id
    and (p.user_id = (select onboarding.current_user_id())
         or (p.session_id = (select onboarding.current_session_id())
             and (select onboarding.current_user_id()) is null))
  for update;
  if not found then
    return;
  end if;
  -- One row per answer, or one with no answer when there is none.
  return query
    select locked.id, locked.user_id, locked.organization_id, locked.flow_id,
           locked.flow_version, locked.state, locked.current_step, locked.completed_steps,
           locked.row_version, locked.updated_at,
           a.step, a.answers, a.status, a.flow_version, a.version, a.updated_at
    from (select) as the_row
    left join onboarding.step_answers a on a.progress_id = locked.id
    order by a.step;
end
$$;

comment on function onboarding.own_progress_for_update_with_answers(text) is
  'The caller''s progress row for a flow, locked, with every answer of it read after the lock (the first call of a save); plans cached per connection.';

-- `p_version` null: the step's first answer (no row when one exists already);
-- else the answer replaced if its version is still `p_version`. No row when
-- that precondition no longer holds, and then nothing is recorded. The
-- progress columns are null when the caller cannot update the row.
create function onboarding.store_answer_and_record_step(
  p_progress_id uuid, p_step text, p_answers jsonb, p_status text, p_flow_version integer,
  p_version bigint, p_completed_steps text[], p_current_step text)
returns setof onboarding.progress_with_answer
language plpgsql volatile
as $$
declare
  stored   onboarding.step_answers;
  recorded onboarding.progress;
begin
  if p_version is null then
    insert into onboarding.step_answers as a (progress_id, step, answers, status, flow_version)
    values (p_progress_id, p_step, p_answers, p_status, p_flow_version)
    on conflict (progress_id, step) do nothing
    returning a.* into stored;
  else
    update onboarding.step_answers a
    set answers = p_answers, status = p_status, flow_version = p_flow_version,
        version = a.version + 1
    where a.progress_id = p_progress_id and a.step = p_step and a.version = p_version
    returning a.* into stored;
  end if;
  if not found then
    return;
  end if;
  update onboarding.progress p
  set completed_steps = p_completed_steps, current_step = p_current_step,
      flow_version = p_flow_version, row_version = p.row_version + 1
  where p.id = p_progress_id
  returning p.* into recorded;
  return query
    select recorded.id, recorded.user_id, recorded.organization_id, recorded.flow_id,
           recorded.flow_version, recorded.state, recorded.current_step,
           recorded.completed_steps, recorded.row_version, recorded.updated_at,
           stored.step, stored.answers, stored.status, stored.flow_version, stored.version,
           stored.updated_at;
end
$$;

comment on function onboarding.store_answer_and_record_step(uuid, text, jsonb, text, integer, bigint, text[], text) is
  'A step''s answer stored if its precondition holds, and then the steps recorded (the second call of a save); plans cached per connection.';

revoke all on function onboarding.own_progress_for_update_with_answers(text) from public;
revoke all on function onboarding.store_answer_and_record_step(uuid, text, jsonb, text, integer, bigint, text[], text) from public;
grant execute on function
  onboarding.own_progress_for_update_with_answers(text),
  onboarding.store_answer_and_record_step(uuid, text, jsonb, text, integer, bigint, text[], text)
  to anonymous, authenticated;
