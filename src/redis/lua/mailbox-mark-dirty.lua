-- keys: 2
-- A webhook for one account: mark its mailbox dirty and say whether its actor must be woken.
-- KEYS[1] credentials (exists iff linked), KEYS[2] mailbox hash
-- Returns -1: not linked (ignore); 1: it was idle, wake it; 0: a run is going, it will list once more;
-- 2: parked, its credentials were refused (actor-save.lua): the re-link that unparks it lists then.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], 'dirty', '1')
redis.call('HINCRBY', KEYS[2], 'webhooks', 1)
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'running' then return 0 end
if status == 'parked' then return 2 end
redis.call('HSET', KEYS[2], 'status', 'running')
return 1
