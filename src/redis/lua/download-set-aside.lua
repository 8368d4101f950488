-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- A queued file that no retry can write while its path stays as it is (a name the file system
-- refuses, a folder where the file should go): off the queue, into the account's set-aside files
-- with the reason, so the rest of the account syncs. The next listing that names the path again
-- (a change, a resync) takes it out of there (changes-commit.lua) and queues it afresh.
-- KEYS[1] queue, KEYS[2] set-aside files; ARGV[1] path_lower, ARGV[2] rev, ARGV[3] the record (JSON)
-- Returns 1 when set aside, 0 when the queue no longer holds this rev (a newer listing replaced it).
local queued = redis.call('HGET', KEYS[1], ARGV[1])
if not queued or cjson.decode(queued).rev ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
