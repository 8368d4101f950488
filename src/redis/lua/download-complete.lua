-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: complete-download
-- A file is on disk: record it and take it off the queue (the rules: lib/complete-download.lua).
-- KEYS[1] queue, KEYS[2] files, KEYS[3] file ids; ARGV[1..4] as complete_download's args.
-- Returns 1 when recorded, 0 when the queue now holds another rev (the caller discards its file).
return complete_download(KEYS[1], KEYS[2], KEYS[3], ARGV)
