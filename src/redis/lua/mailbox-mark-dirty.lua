-- keys: 5
-- uses: begin-listing
-- A webhook for one account: mark its mailbox dirty and say whether its actor must be woken.
-- When the caller holds the account's idle actor in memory, it passes that actor's lease token:
-- if the token is still the account's fence and no run is going, the listing begins here too
-- (lib/begin-listing.lua), and the actor starts fetching from what this returns without a round
-- trip of its own. Not fenced like the actor's writes: a stale token only means "do not begin".
-- KEYS[1] credentials (exists iff linked), KEYS[2] mailbox hash (holds the fence and the listing's
-- `mode` and `resync`), KEYS[3] page cursor (string), KEYS[4] committed cursor (string),
-- KEYS[5] unapplied changes (list)
-- ARGV[1] the lease token of the caller's idle actor ('' when it holds none), ARGV[2] now (epoch ms)
-- Returns -1: not linked (ignore); 0: a run is going, it will list once more; 1: it was idle, wake
-- it; { 1, mode, from }: it was idle, wake it, and its listing has begun there.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], 'dirty', '1')
redis.call('HINCRBY', KEYS[2], 'webhooks', 1)
if redis.call('HGET', KEYS[2], 'status') == 'running' then return 0 end
redis.call('HSET', KEYS[2], 'status', 'running')
if ARGV[1] ~= '' and redis.call('HGET', KEYS[2], 'fence') == ARGV[1] then
  local start = begin_listing(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2])
  return { 1, start[1], start[2] }
end
return 1
