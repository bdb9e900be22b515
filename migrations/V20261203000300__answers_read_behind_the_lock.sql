-- Every answer of the caller's own progress row for a flow, by flow id, so
-- a save can read them in the round trip that locks the row.
--
-- Why: a save locked the caller's progress row, then read its answers by
-- the row's id: two round trips before any validation, five in all with the
-- write, the recorded step and COMMIT. By flow id, the read needs nothing
-- the lock returns and is pipelined right behind it. PostgreSQL runs the
-- pipeline in order, and at READ COMMITTED each statement takes its snapshot
-- when it starts, so the read starts only once the lock is held and sees
-- whatever the previous holder committed (tests/contract.rs: a save that
-- waits for another tab's lock).
--
-- With prepared statements the application sends the query itself
-- (`answers::ALL_OF_OWN_PROGRESS`); this function is the same query for
-- connections that cannot keep prepared statements, whose plan PL/pgSQL
-- keeps per server connection (V20261203000200). SECURITY INVOKER (the
-- default): it runs as the caller's role under the same policies.

create function onboarding.answers_of_own_progress(p_flow_id text)
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
    where p.flow_id = p_flow_id
      and (p.user_id = (select onboarding.current_user_id())
           or (p.session_id = (select onboarding.current_session_id())
               and (select onboarding.current_user_id()) is null))
    order by a.step;
end
$$;

comment on function onboarding.answers_of_own_progress(text) is
  'Every answer of the caller''s progress row for a flow, by step (read behind the row''s lock in a save); plan cached per connection.';

revoke all on function onboarding.answers_of_own_progress(text) from public;
grant execute on function onboarding.answers_of_own_progress(text) to anonymous, authenticated;
