-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: set-entry
-- Upserts the entry for one path in a single atomic step (the rules: lib/set-entry.lua).
-- KEYS[1] entryIds, KEYS[2] entries; ARGV[1..7] as set_entry's args.
-- Returns { entry JSON, applied (0/1), created (0/1) }.
local json, applied, created = set_entry(KEYS[1], KEYS[2], ARGV)
return { json, applied, created }
