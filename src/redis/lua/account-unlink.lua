-- keys: 4
-- uses: next-fence
-- Unlink: forget the credentials and the actor; keep the mirror, its index, the entries and the
-- listing's state (cursor, mode, ignoreRules), so a later re-link carries on from the saved cursor.
-- Bumping the fence refuses every further write of whichever process still runs the actor;
-- dropping the lease lets a re-link start at once.
-- KEYS[1] credentials, KEYS[2] mailbox (also holds the fence), KEYS[3] actor hash, KEYS[4] lease
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
next_fence(KEYS[2])
-- The idle actor's compact state goes with the actor (a re-link starts a fresh one at version 1),
-- and the link's settings with the link.
redis.call('HDEL', KEYS[2], 'actorVersion', 'actorUpdatedAt', 'runs', 'lastSyncedAt', 'ignore', 'linkedAt')
redis.call('HSET', KEYS[2], 'status', 'idle', 'dirty', '0')
return existed
