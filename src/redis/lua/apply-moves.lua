-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- How far the apply of one listed page has got with its moves, until the page is committed:
-- 'staging' once it starts moving files and entries aside, 'placed' once those moves and the
-- page's removals are done and only the placing is left. While either is recorded nothing is listed
-- (listing-begin.lua), so the page a replay finds is the very same one. A replay after 'placed'
-- must not stage or remove again: the files and entries it would find at the old paths are the ones
-- already moved there (a swap), and a removal could delete a file already moved into place.
-- apply-read.lua returns the record; changes-commit.lua clears it with the page.
-- The ignore patterns the apply planned with are kept beside it (the first ones: a replay plans with
-- them), for the same reason: rules changed meanwhile (a re-link) would plan other moves, leaving
-- files placed and entries parked by the first attempt where no later plan looks for them.
-- KEYS[1] mailbox, KEYS[2] apply rules (string); ARGV[1] 'staging' or 'placed', ARGV[2] the page
-- id (lib/apply-read.lua), ARGV[3] the ignore patterns the plan used (JSON)
redis.call('HSET', KEYS[1], 'moves', ARGV[1] .. ' ' .. ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'NX')
return 1
