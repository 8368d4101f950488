-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- The end of a run decides, in one step, between "list once more" and "idle", so a webhook that
-- lands between the check and going idle is never lost: it either sees status=running (and sets
-- dirty, which this step reads) or arrives after status=idle (and wakes the actor).
-- The dirty flag is NOT cleared here but by listing-begin, at the start of the next listing: if this
-- step is replayed (the process died before the machine's transition was persisted), it must give
-- the same answer again.
-- KEYS[1] mailbox, KEYS[2] download queue, KEYS[3] unapplied changes
if redis.call('HGET', KEYS[1], 'dirty') == '1' then return 'again' end
if redis.call('HLEN', KEYS[2]) > 0 or redis.call('LLEN', KEYS[3]) > 0 then return 'again' end
redis.call('HSET', KEYS[1], 'status', 'idle')
-- A run that ends well ends any wait for a re-link: the next one's re-checks start from the
-- shortest interval (parked-recheck.lua).
redis.call('HDEL', KEYS[1], 'rechecks')
return 'idle'
