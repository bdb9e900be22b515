-- Retention of the outbox: an event delivered or dead-lettered more than
-- OUTBOX_RETENTION_DAYS days ago (by `settled_at`) is deleted by the nightly
-- purge (`GET /api/cron/purge`), as the other kinds of
-- `V20261201000100__retention.sql` are. A settled event (who did what, and
-- when) is no receiver's any more: it was delivered, or an operator had the
-- retention's days to replay it; a pending one is never purged, however
-- old, since it has still to reach its receivers.
--
-- The purger (`onboarding_purger`, no login, no members, neither superuser
-- nor BYPASSRLS) may see and delete only settled rows older than a day, the
-- shortest retention the setting allows, through its own policy.

-- UPDATE only because a batch locks its rows (`for update`) before it
-- deletes them; the purger changes no row.
grant select, update, delete on onboarding.outbox to onboarding_purger;
create policy outbox_purge on onboarding.outbox
  for all to onboarding_purger
  using (state <> 'pending' and settled_at < now() - interval '1 day');

-- The purge's scan, oldest settled first. Partial: the hot path (a save that
-- writes a pending event) does not touch it; an event enters it once, when
-- it settles.
create index outbox_settled on onboarding.outbox (settled_at) where state <> 'pending';

-- Settled events whose `settled_at` is more than `retention_days` days ago.
create function onboarding.purge_settled_outbox(retention_days integer, batch_size integer) returns integer
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
    select o.id
    from onboarding.outbox o
    where o.state <> 'pending'
      and o.settled_at < now() - make_interval(days => retention_days)
    order by o.settled_at
    limit batch_size
    for update skip locked
  ) batch;
  delete from onboarding.outbox o
  where o.id = any (doomed);
  get diagnostics purged = row_count;
  return purged;
end
$$;

-- Only the login role may run it, and only outside a request's switched role.
revoke all on function onboarding.purge_settled_outbox(integer, integer) from public;
grant execute on function onboarding.purge_settled_outbox(integer, integer) to onboarding_app;

-- The purger owns it (changing an owner to a role needs CREATE on the schema
-- for that role, for the length of the change).
grant create on schema onboarding to onboarding_purger;
alter function onboarding.purge_settled_outbox(integer, integer) owner to onboarding_purger;
revoke create on schema onboarding from onboarding_purger;
