-- keys: 5
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: set-entry, complete-download
-- A downloaded post is on disk: set its entry and complete the download in one step, one round
-- trip instead of two in series (entry-set.lua, then download-complete.lua), with the same rules
-- (the shared lib/ functions) in the same order: the entry is set even when a newer listing
-- superseded the rev (the file on disk is this rev, and the newer rev's download follows).
--
-- KEYS[1] queue, KEYS[2] files, KEYS[3] file ids   (as download-complete.lua)
-- KEYS[4] entryIds, KEYS[5] entries                (as entry-set.lua)
-- ARGV[1..4] as download-complete.lua's, ARGV[5..11] as entry-set.lua's ARGV[1..7]
--
-- Returns { completed (0/1), entry JSON, applied (0/1), created (0/1) }; completed is 0 when the
-- queue now holds another rev.
local json, applied, created = set_entry(KEYS[4], KEYS[5], { unpack(ARGV, 5, 11) })
return { complete_download(KEYS[1], KEYS[2], KEYS[3], { unpack(ARGV, 1, 4) }), json, applied, created }
