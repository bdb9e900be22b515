-- Health compares the newest migration applied here with the newest one the
-- binary carries: a deployment that runs ahead of its database answers 503
-- with `schema: behind`, instead of failing route by route. The login role
-- may read the version column only; it can still touch no table of the wizard.
grant select (version) on table public.refinery_schema_history to onboarding_app;
