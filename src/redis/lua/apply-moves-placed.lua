-- keys: 1
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- The apply step of one listed page has staged its moves, parked their entries and run its
-- removals: from here on it only places them. A replay of the same page (the commit failed, the
-- process died) must not stage or remove again: the files and entries it would find at the old
-- paths are the ones already moved there (a swap), and a removal could delete a file already moved
-- into place. apply-read.lua returns the mark; changes-commit.lua clears it with the page.
-- KEYS[1] mailbox; ARGV[1] the page id (lib/apply-read.lua)
redis.call('HSET', KEYS[1], 'movesPlaced', ARGV[1])
return 1
