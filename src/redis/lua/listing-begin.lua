-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Start (or resume) a listing: clear the dirty flag first, so any webhook from now on makes the run
-- list once more, and tell the caller where to start.
-- KEYS[1] mailbox, KEYS[2] listing hash, KEYS[3] unapplied changes (list); ARGV[1] now (epoch ms)
-- Returns { mode, from } where from = '' means "list_folder from scratch".
redis.call('HSET', KEYS[1], 'dirty', '0', 'listedAt', ARGV[1])
if redis.call('HGET', KEYS[2], 'resync') == '1' then
  redis.call('HDEL', KEYS[2], 'resync', 'pageCursor')
  redis.call('HSET', KEYS[2], 'mode', 'full')
end
local mode = redis.call('HGET', KEYS[2], 'mode') or 'continue'
local page = redis.call('HGET', KEYS[2], 'pageCursor')
if page then return { mode, page } end
local cursor = redis.call('HGET', KEYS[2], 'cursor')
if mode == 'full' or not cursor then
  -- A full listing from scratch supersedes whatever was listed before and not applied yet: the
  -- reconcile after it deletes what is gone.
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'mode', 'full')
  return { 'full', '' }
end
return { mode, cursor }
