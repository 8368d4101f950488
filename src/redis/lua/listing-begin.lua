-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: begin-listing
-- A run starts (or resumes) its listing (lib/begin-listing.lua).
-- KEYS[1] mailbox, KEYS[2] listing hash, KEYS[3] unapplied changes (list); ARGV[1] now (epoch ms)
-- Returns { mode, from } where from = '' means "list_folder from scratch".
return begin_listing(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
