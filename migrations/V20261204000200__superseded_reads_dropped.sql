-- The read functions that later migrations replaced, dropped.
--
-- Why: no code calls them any more, yet each stays executable by the
-- application's roles and has to be kept isolation-safe by every policy
-- change after it. Each was kept when its replacement landed, for the
-- instances of the release before that still called it while a deployment
-- rolled out (a binary keeps serving a schema that is ahead of it). The
-- releases since call only their replacements, so that window is closed:
--
-- - own_progress_with_answers, own_step_answer (V20261201000800): replaced by
--   the one-call reads of V20261202000100, then by the batched reads of
--   V20261202000200 (own_progress_with_answers_each_as,
--   own_step_answer_each_as).
-- - own_progress_with_answers_as, own_step_answer_as (V20261202000100):
--   replaced by the same batched reads.
-- - answers_of_own_progress (V20261203000300): replaced by
--   own_progress_for_update_with_answers (V20261204000100), which reads the
--   answers behind the lock in the same call.
--
-- tests/catalog.rs fails when a function of the schema is called neither by
-- the library nor by the schema itself.

drop function onboarding.own_progress_with_answers(text);
drop function onboarding.own_step_answer(text, text);
drop function onboarding.own_progress_with_answers_as(text, text, text);
drop function onboarding.own_step_answer_as(text, text, text, text);
drop function onboarding.answers_of_own_progress(text);
