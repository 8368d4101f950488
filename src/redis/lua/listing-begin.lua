-- keys: 4
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Start (or resume) a listing: clear the dirty flag first, so any webhook from now on makes the run
-- list once more, and tell the caller where to start.
-- KEYS[1] mailbox (holds `mode` and `resync`), KEYS[2] page cursor (string), KEYS[3] committed
-- cursor (string), KEYS[4] unapplied changes (list); ARGV[1] now (epoch ms)
-- Returns { mode, from } where from = '' means "list_folder from scratch", else a stored cursor
-- (src/sync/stored-cursor.ts: may be bytes, so the caller reads the reply as bytes); or
-- { 'placed', '' } when nothing may be listed now (below), with the dirty flag left as it is.
-- A listed page whose apply has begun to move files (apply-moves.lua) is applied before anything
-- is listed after it, or in its place: its replay must find the very same page, or it would stage
-- and remove again against an index that does not know the moves happened, or leave an entry parked.
if redis.call('HEXISTS', KEYS[1], 'moves') == 1 then return { 'placed', '' } end
redis.call('HSET', KEYS[1], 'dirty', '0', 'listedAt', ARGV[1])
if redis.call('HGET', KEYS[1], 'resync') == '1' then
  redis.call('HDEL', KEYS[1], 'resync')
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'mode', 'full')
end
local mode = redis.call('HGET', KEYS[1], 'mode') or 'continue'
local page = redis.call('GET', KEYS[2])
if page then return { mode, page } end
local cursor = redis.call('GET', KEYS[3])
if mode == 'full' or not cursor then
  -- A full listing from scratch supersedes whatever was listed before and not applied yet: the
  -- reconcile after it deletes what is gone.
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[1], 'mode', 'full')
  return { 'full', '' }
end
return { mode, cursor }
