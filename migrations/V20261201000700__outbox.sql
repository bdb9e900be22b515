-- The transactional outbox: the events that tell the rest of a product where
-- a user's onboarding stands (`onboarding.completed`,
-- `onboarding.step_completed`, `onboarding.merged`), written by the request's
-- own transaction, so there is no completion without its event and no event
-- without its completion. A courier (`GET /api/cron/deliver`, and one attempt
-- after each response that wrote an event) delivers them at least once, in
-- order per user, to the deployment's webhook receivers and, opted in, to
-- the identity provider's user metadata.
--
-- Who may do what:
--   - a signed-in request (`authenticated`) may only INSERT its own user's
--     events; it cannot read, change or delete any, its own included;
--   - anonymous requests write none (an anonymous draft's steps reach the
--     product through `onboarding.merged` once the visitor signs in);
--   - delivery goes through two SECURITY DEFINER functions owned by
--     `onboarding_courier` (no login, no members, neither superuser nor
--     BYPASSRLS), executable only by the login role `onboarding_app` outside
--     a request's switched role (`Database::as_login_role`). The courier may
--     read and update outbox rows and nothing else.
--
-- An event belongs to the progress row it reports on and goes with it (on
-- delete cascade): erasing a user (`erase_caller`, `erase_user`) takes their
-- events, delivered or not, with their progress.

create table onboarding.outbox (
  id              bigint generated always as identity primary key,
  -- The `webhook-id` of every delivery of this event, retries included.
  event_id        uuid not null unique,
  user_id         text not null check (length(user_id) between 1 and 200),
  progress_id     uuid not null references onboarding.progress (id) on delete cascade,
  event_type      text not null check (event_type in
                    ('onboarding.completed', 'onboarding.step_completed', 'onboarding.merged')),
  -- The webhook body, byte for byte what is signed and sent.
  payload         jsonb not null,
  state           text not null default 'pending' check (state in ('pending', 'delivered', 'dead')),
  -- Attempts started (a claim counts as one, so a courier killed mid-batch
  -- uses one of the event's attempts).
  attempts        integer not null default 0 check (attempts >= 0),
  -- When the event may be claimed again: its backoff after a failure, or the
  -- lease of the courier delivering it now.
  next_attempt_at timestamptz not null default now(),
  -- The destinations that acknowledged it, so a retry skips them.
  delivered_to    text[] not null default '{}',
  last_error      text check (length(last_error) <= 1000),
  created_at      timestamptz not null default now(),
  settled_at      timestamptz,
  constraint outbox_settled_has_timestamp check ((state = 'pending') = (settled_at is null))
);
-- The head of each user's queue, and the claim's scan, in id order.
create index outbox_pending_user on onboarding.outbox (user_id, id) where state = 'pending';
create index outbox_pending on onboarding.outbox (id) where state = 'pending';
create index outbox_progress on onboarding.outbox (progress_id);

alter table onboarding.outbox enable row level security;
alter table onboarding.outbox force row level security;

grant insert on onboarding.outbox to authenticated;
create policy outbox_insert_own on onboarding.outbox
  for insert to authenticated
  with check (user_id = (select onboarding.current_user_id()));

do $roles$
begin
  begin
    create role onboarding_courier nologin noinherit nosuperuser nobypassrls nocreatedb nocreaterole;
  exception when duplicate_object or unique_violation then null;
  end;
end
$roles$;

grant usage on schema onboarding to onboarding_courier;
grant select, update on onboarding.outbox to onboarding_courier;
create policy outbox_courier on onboarding.outbox
  for all to onboarding_courier
  using (true) with check (true);

-- Claims up to `batch_size` events that are due: each the oldest pending
-- event of its user (a later event waits until the earlier one is delivered
-- or dead-lettered), taken `for update skip locked` so couriers running at
-- once claim disjoint events, and leased for `lease_seconds` (the courier's
-- attempt must end within it; after it the event is due again, so an event
-- whose courier died is delivered by the next one).
create function onboarding.outbox_claim(batch_size integer, lease_seconds integer)
  returns table (id bigint, event_id uuid, user_id text, event_type text, payload jsonb,
                 attempts integer, delivered_to text[])
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_custom_plan
as $$
begin
  if batch_size is null or batch_size not between 1 and 1000 then
    raise exception 'batch size % is outside 1..1000', batch_size
      using errcode = 'invalid_parameter_value';
  end if;
  if lease_seconds is null or lease_seconds not between 1 and 3600 then
    raise exception 'lease of % seconds is outside 1..3600', lease_seconds
      using errcode = 'invalid_parameter_value';
  end if;
  return query
  with due as (
    select o.id
    from onboarding.outbox o
    where o.state = 'pending'
      and o.next_attempt_at <= now()
      and not exists (
        select 1 from onboarding.outbox earlier
        where earlier.user_id = o.user_id and earlier.state = 'pending' and earlier.id < o.id)
    order by o.id
    limit batch_size
    for update skip locked
  )
  update onboarding.outbox o
  set attempts = o.attempts + 1,
      next_attempt_at = now() + make_interval(secs => lease_seconds)
  from due
  where o.id = due.id
  returning o.id, o.event_id, o.user_id, o.event_type, o.payload, o.attempts, o.delivered_to;
end
$$;

-- Records the outcome of one attempt of a pending event: `delivered` (every
-- destination acknowledged), `retry` (due again in `retry_in_seconds`) or
-- `dead` (dead-lettered: no more attempts; the user's next event proceeds).
-- Returns whether the event was still pending.
create function onboarding.outbox_settle(outbox_id bigint, acknowledged text[], outcome text,
                                         retry_in_seconds integer, failure text)
  returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
as $$
begin
  if outcome is null or outcome not in ('delivered', 'retry', 'dead') then
    raise exception 'outcome % is not delivered, retry or dead', outcome
      using errcode = 'invalid_parameter_value';
  end if;
  update onboarding.outbox o
  set delivered_to = coalesce(acknowledged, o.delivered_to),
      state = case outcome when 'retry' then 'pending' else outcome end,
      settled_at = case outcome when 'retry' then null else now() end,
      next_attempt_at = case outcome
        when 'retry' then now() + make_interval(secs => greatest(coalesce(retry_in_seconds, 1), 1))
        else o.next_attempt_at end,
      last_error = left(failure, 1000)
  where o.id = outbox_id and o.state = 'pending';
  return found;
end
$$;

revoke all on function
  onboarding.outbox_claim(integer, integer),
  onboarding.outbox_settle(bigint, text[], text, integer, text)
  from public;
grant execute on function
  onboarding.outbox_claim(integer, integer),
  onboarding.outbox_settle(bigint, text[], text, integer, text)
  to onboarding_app;

grant create on schema onboarding to onboarding_courier;
alter function onboarding.outbox_claim(integer, integer) owner to onboarding_courier;
alter function onboarding.outbox_settle(bigint, text[], text, integer, text) owner to onboarding_courier;
revoke create on schema onboarding from onboarding_courier;
