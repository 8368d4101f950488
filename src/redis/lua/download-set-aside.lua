-- keys: 4
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: complete-download
-- A queued file that no retry can write while its path stays as it is (a name the file system
-- refuses, a folder where the file should go), or a post in place whose entry cannot be built:
-- off the queue, into the account's set-aside files with the reason, so the rest of the account
-- syncs. The next listing that names the path again (a change, a resync) takes it out of there
-- (changes-commit.lua) and queues it afresh.
-- KEYS[1] queue, KEYS[2] set-aside files, KEYS[3] files, KEYS[4] file ids; ARGV[1] path_lower,
-- ARGV[2] rev, ARGV[3] the record (JSON), ARGV[4] '' or, for a file that is in the mirror all the
-- same, its file record (JSON) and ARGV[5] its id: recorded as complete_download does, so a
-- deletion or a new ignore rule removes it like any file (the caller blanks its rev and hash, so a
-- listing that names it again queues it afresh, as for any file set aside).
-- Returns 1 when set aside, 0 when the queue no longer holds this rev (a newer listing replaced it).
local queued = redis.call('HGET', KEYS[1], ARGV[1])
if not queued or cjson.decode(queued).rev ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' then
  complete_download(KEYS[1], KEYS[3], KEYS[4], { ARGV[1], ARGV[2], ARGV[4], ARGV[5] })
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
