-- keys: 1
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Persist an actor snapshot, only if it is newer than the stored one: snapshots are written
-- asynchronously and ioredis may replay a write late, so an older one must never win.
-- KEYS[1] actor hash; ARGV version, snapshot JSON, schema, updatedAt, state name
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) <= stored then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'snapshot', ARGV[2], 'schema', ARGV[3], 'updatedAt', ARGV[4], 'state', ARGV[5])
return 1
