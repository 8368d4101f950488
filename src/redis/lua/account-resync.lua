-- keys: 2
-- Ask for a full re-list and reconcile: it starts at the next listing (at once if idle).
-- KEYS[1] credentials (exists iff linked), KEYS[2] mailbox
-- Returns -1: not linked; 1: wake the actor; 0: a run is going, it will list again, fully.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], 'resync', '1', 'dirty', '1')
if redis.call('HGET', KEYS[2], 'status') == 'running' then return 0 end
redis.call('HSET', KEYS[2], 'status', 'running')
return 1
