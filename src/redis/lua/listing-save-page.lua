-- keys: 7
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: apply-read
-- One listed page, saved the moment it arrives: its entries join the unapplied changes and its
-- cursor becomes the resume point, in one step. Compare-and-set on the cursor the page was fetched
-- with, so a replayed or duplicated call (ioredis can resend a command that timed out) adds nothing.
-- The last page of a listing also returns what the apply step reads next (lib/apply-read.lua), so
-- that step, following at once under the same lease, need not ask for it again.
-- KEYS[1] listing hash, KEYS[2] unapplied changes (list), KEYS[3] files, KEYS[4] file-ids,
-- KEYS[5] ignored, KEYS[6] download queue, KEYS[7] account hash
-- ARGV[1] cursor the page was fetched from ('' = list_folder), ARGV[2] the page's cursor,
-- ARGV[3] '1' for the listing's last page, ARGV[4..] the page's entries as JSON, in Dropbox's order.
-- Returns 0 when the page was saved before; { 1 } when saved, { 1, apply read } for a last page.
local listing = KEYS[1]
local from = redis.call('HGET', listing, 'pageCursor')
if not from then
  if redis.call('HGET', listing, 'mode') == 'full' then from = '' else from = redis.call('HGET', listing, 'cursor') or '' end
end
if from ~= ARGV[1] then return 0 end
for i = 4, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('HSET', listing, 'pageCursor', ARGV[2])
if ARGV[3] == '1' then return { 1, apply_read(KEYS[2], KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]) } end
return { 1 }
