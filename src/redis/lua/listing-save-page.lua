-- keys: 9
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- uses: apply-read
-- One listed page, saved the moment it arrives: its entries join the unapplied changes and its
-- cursor becomes the resume point, in one step. Compare-and-set on the cursor the page was fetched
-- with, so a replayed or duplicated call (ioredis can resend a command that timed out) adds nothing.
-- The last page of a listing also returns what the apply step reads next (lib/apply-read.lua), so
-- that step, following at once under the same lease, need not ask for it again.
-- KEYS[1] mailbox (holds `mode`), KEYS[2] page cursor (string), KEYS[3] committed cursor (string),
-- KEYS[4] unapplied changes (list), KEYS[5] files, KEYS[6] file-ids, KEYS[7] ignored, KEYS[8] download queue,
-- KEYS[9] the apply's frozen ignore patterns (lib/apply-read.lua)
-- ARGV[1] the cursor the page was fetched from, exactly as it is stored here ('' = list_folder),
-- ARGV[2] the page's cursor in its stored form (src/sync/stored-cursor.ts),
-- ARGV[3] '1' for the listing's last page, ARGV[4..] the page's entries as JSON, in Dropbox's order.
-- Returns 0 when the page was saved before; { 1 } when saved, { 1, apply read } for a last page.
local from = redis.call('GET', KEYS[2])
if not from then
  if redis.call('HGET', KEYS[1], 'mode') == 'full' then from = '' else from = redis.call('GET', KEYS[3]) or '' end
end
if from ~= ARGV[1] then return 0 end
for i = 4, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] == '1' then return { 1, apply_read(KEYS[4], KEYS[1], KEYS[2], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]) } end
return { 1 }
