-- keys: 3
-- Unlink: forget the credentials and the actor; keep the mirror, its index and the entries, so a
-- later re-link carries on from the saved cursor.
-- KEYS[1] account hash, KEYS[2] mailbox, KEYS[3] actor hash
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('HSET', KEYS[2], 'status', 'idle', 'dirty', '0')
return existed
