-- keys: 4
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: begin-listing
-- A run starts (or resumes) its listing (lib/begin-listing.lua).
-- KEYS[1] mailbox (holds `mode` and `resync`), KEYS[2] page cursor (string), KEYS[3] committed
-- cursor (string), KEYS[4] unapplied changes (list); ARGV[1] now (epoch ms)
-- Returns { mode, from } where from = '' means "list_folder from scratch".
return begin_listing(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
