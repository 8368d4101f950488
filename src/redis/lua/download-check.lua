-- keys: 1
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Right before a downloaded file is renamed into place: is the caller still the owner (fence), and
-- is this rev still the one queued? Returns 0 when a newer listing superseded it.
-- KEYS[1] queue; ARGV[1] path_lower, ARGV[2] rev
local queued = redis.call('HGET', KEYS[1], ARGV[1])
if queued and cjson.decode(queued).rev ~= ARGV[2] then return 0 end
return 1
