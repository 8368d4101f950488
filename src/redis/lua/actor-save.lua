-- keys: 0
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Persist an actor snapshot and nothing else: for a snapshot no other script of the account
-- carried (see FENCE_PRELUDE in scripts.ts, which writes it with lib/save-actor.lua).
-- Returns 1 if it was written, 0 if the stored one is as new or newer.
return carriedSaved
