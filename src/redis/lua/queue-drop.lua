-- keys: 1
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Take a queued download off the queue without a file (gone from Dropbox, or refused as unsafe),
-- unless a newer listing replaced it meanwhile.
-- KEYS[1] queue; ARGV[1] path_lower, ARGV[2] rev
local queued = redis.call('HGET', KEYS[1], ARGV[1])
if not queued then return 0 end
if cjson.decode(queued).rev ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
