-- keys: 1
-- The sweep's re-check of an account awaiting a re-link, if it is due: its last try (listedAt) is
-- older than the base interval doubled once per re-check of this wait, up to a ceiling (a revoked
-- app is tried 1 h, 2 h, 4 h ... then once a day, not every hour for good). Due, it is stamped
-- and set running in this one step, like a webhook's wake: a wake that is then lost (all run slots
-- taken, the owner passivating, a lease held by a dead process) is found by the reaper, a boot or
-- the slot queue, as any running account's, and two sweeps cannot both take it.
-- KEYS[1] mailbox
-- ARGV[1] now (epoch ms), ARGV[2] base interval (ms), ARGV[3] longest interval (ms)
-- Returns 1 when due (the caller wakes the account), 0 when not (or no longer) parked or not due.
local box = redis.call('HMGET', KEYS[1], 'status', 'listedAt', 'rechecks')
if box[1] ~= 'parked' then return 0 end
local rechecks = tonumber(box[3] or '0')
local interval = math.min(tonumber(ARGV[2]) * 2 ^ rechecks, tonumber(ARGV[3]))
if tonumber(ARGV[1]) - tonumber(box[2] or '0') < interval then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'listedAt', ARGV[1], 'rechecks', tostring(rechecks + 1))
return 1
