-- Persists an actor snapshot, only if it is newer than the stored one: snapshots are written
-- asynchronously, some with the account's next script (see FENCE_PRELUDE in scripts.ts), and
-- ioredis may replay a write late, so an older one must never win. Returns 1 if it was written.
-- An idle actor is stored compactly in the mailbox (its run count and last sync; the machine's
-- defaults are the rest) and its snapshot hash is dropped: most accounts are idle most of the time.
-- mailbox: the account's mailbox hash (its fence hash too); actor: its snapshot hash;
-- state 'idle': a = runs, b = lastSyncedAt ('' when never); otherwise a = snapshot JSON, b = schema.
local function saveActor(mailbox, actor, version, updatedAt, state, a, b)
  local stored = tonumber(redis.call('HGET', mailbox, 'actorVersion') or '0')
  if tonumber(version) <= stored then return 0 end
  redis.call('HSET', mailbox, 'actorVersion', version, 'actorUpdatedAt', updatedAt)
  if state == 'idle' then
    redis.call('DEL', actor)
    redis.call('HSET', mailbox, 'runs', a)
    if b == '' then redis.call('HDEL', mailbox, 'lastSyncedAt') else redis.call('HSET', mailbox, 'lastSyncedAt', b) end
  else
    redis.call('HSET', actor, 'snapshot', a, 'schema', b, 'state', state)
    redis.call('HDEL', mailbox, 'runs', 'lastSyncedAt')
  end
  return 1
end
