-- keys: 3
-- Link (or re-link) an account and ask for a sync in one step.
-- KEYS[1] account hash, KEYS[2] mailbox, KEYS[3] listing
-- ARGV[1] credentials JSON, ARGV[2] now (epoch ms), ARGV[3] ignore patterns JSON
-- Returns 1 when the actor must be woken, 0 when a run is already going.
redis.call('HSET', KEYS[1], 'credentials', ARGV[1], 'ignore', ARGV[3])
redis.call('HSETNX', KEYS[1], 'linkedAt', ARGV[2])
redis.call('HSET', KEYS[2], 'dirty', '1')
if redis.call('HGET', KEYS[2], 'status') == 'running' then return 0 end
redis.call('HSET', KEYS[2], 'status', 'running')
return 1
