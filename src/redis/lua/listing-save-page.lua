-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- One listed page, saved the moment it arrives: its entries join the unapplied changes and its
-- cursor becomes the resume point, in one step. Compare-and-set on the cursor the page was fetched
-- with, so a replayed or duplicated call (ioredis can resend a command that timed out) adds nothing.
-- KEYS[1] listing hash, KEYS[2] unapplied changes (list)
-- ARGV[1] cursor the page was fetched from ('' = list_folder), ARGV[2] the page's cursor,
-- ARGV[3..] the page's entries as JSON, in Dropbox's order.
local listing = KEYS[1]
local from = redis.call('HGET', listing, 'pageCursor')
if not from then
  if redis.call('HGET', listing, 'mode') == 'full' then from = '' else from = redis.call('HGET', listing, 'cursor') or '' end
end
if from ~= ARGV[1] then return 0 end
for i = 3, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('HSET', listing, 'pageCursor', ARGV[2])
return 1
