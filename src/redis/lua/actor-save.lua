-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Persist an actor snapshot, only if it is newer than the stored one: snapshots are written
-- asynchronously and ioredis may replay a write late, so an older one must never win.
-- An idle actor is stored compactly in the mailbox (its run count and last sync; the machine's
-- defaults are the rest) and its snapshot hash is dropped: most accounts are idle most of the time.
-- KEYS[1] mailbox, KEYS[2] actor hash, KEYS[3] credentials
-- ARGV[1] version, ARGV[2] updatedAt, ARGV[3] 'compact' for an idle actor's compact record, else
-- the state name of a snapshot stored whole (an idle one too, when it says more than the record), then
--   for 'compact': ARGV[4] runs, ARGV[5] lastSyncedAt ('' when never)
--   otherwise:     ARGV[4] snapshot JSON, ARGV[5] schema, and for 'awaitingRelink' ARGV[6] the
--                  digest of the credentials Dropbox refused ('' when unknown)
-- Returns 1: saved; 0: an older snapshot, not saved; 2: saved, but not parked: the credentials were
-- replaced since the refusal (a re-link while the refused step ran, or before this write), so the
-- caller must wake the actor instead.
local stored = tonumber(redis.call('HGET', KEYS[1], 'actorVersion') or '0')
if tonumber(ARGV[1]) <= stored then return 0 end
redis.call('HSET', KEYS[1], 'actorVersion', ARGV[1], 'actorUpdatedAt', ARGV[2])
-- The mailbox's status follows an actor that awaits a re-link: `parked` keeps webhooks, the sweep
-- and a boot from waking it (no call could succeed with the refused credentials), and whatever
-- state it saves next (a re-link or a resync woke it) is a run again. In the same step as the
-- snapshot, so the two never disagree, whatever order the saves of a quick succession ran in.
local replaced = false
if ARGV[3] == 'awaitingRelink' then
  local credentials = redis.call('GET', KEYS[3])
  replaced = ARGV[6] ~= nil and ARGV[6] ~= '' and credentials and string.sub(redis.sha1hex(credentials), 1, 16) ~= ARGV[6]
  if not replaced then redis.call('HSET', KEYS[1], 'status', 'parked') end
elseif redis.call('HGET', KEYS[1], 'status') == 'parked' then
  redis.call('HSET', KEYS[1], 'status', 'running')
end
if ARGV[3] == 'compact' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'runs', ARGV[4])
  if ARGV[5] == '' then redis.call('HDEL', KEYS[1], 'lastSyncedAt') else redis.call('HSET', KEYS[1], 'lastSyncedAt', ARGV[5]) end
else
  redis.call('HSET', KEYS[2], 'snapshot', ARGV[4], 'schema', ARGV[5], 'state', ARGV[3])
  redis.call('HDEL', KEYS[1], 'runs', 'lastSyncedAt')
end
if replaced then return 2 end
return 1
