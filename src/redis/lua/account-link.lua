-- keys: 5
-- uses: upgrade-listing
-- Link (or re-link) an account and ask for a sync in one step.
-- KEYS[1] credentials (string), KEYS[2] mailbox, KEYS[3] the old layout's listing hash (see
-- keys.ts, oldLayoutKeys), KEYS[4] cursor, KEYS[5] page cursor
-- ARGV[1] credentials (sealed bytes or JSON), ARGV[2] now (epoch ms), ARGV[3] ignore patterns JSON
-- Returns 1 when the actor must be woken, 0 when a run is already going.
redis.call('SET', KEYS[1], ARGV[1])
-- No patterns is no field: every byte of the mailbox counts toward an idle account's 1 KiB.
if ARGV[3] == '[]' then redis.call('HDEL', KEYS[2], 'ignore') else redis.call('HSET', KEYS[2], 'ignore', ARGV[3]) end
redis.call('HSETNX', KEYS[2], 'linkedAt', ARGV[2])
-- New credentials: a later wait for a re-link starts its re-checks from the shortest interval.
redis.call('HDEL', KEYS[2], 'rechecks')
-- An account unlinked before the layout upgrade kept its cursor in the old listing hash (the
-- upgrade at engine start converts linked accounts only): carry on from it.
upgrade_listing(KEYS[3], KEYS[2], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[2], 'dirty', '1')
if redis.call('HGET', KEYS[2], 'status') == 'running' then return 0 end
redis.call('HSET', KEYS[2], 'status', 'running')
return 1
