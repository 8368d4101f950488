-- Start (or resume) a listing: clear the dirty flag first, so any webhook from now on makes the run
-- list once more, stamp when the account was listed, and say where to start.
-- Used by listing-begin.lua (a run's own start) and mailbox-mark-dirty.lua (a webhook that wakes an
-- idle actor held in memory starts its listing in the same step): one copy of the rules.
-- mailbox_key, listing_key, changes_key: the account's mailbox, listing hash and unapplied changes
-- now: epoch ms
-- Returns { mode, from } where from = '' means "list_folder from scratch".
local function begin_listing(mailbox_key, listing_key, changes_key, now)
  redis.call('HSET', mailbox_key, 'dirty', '0', 'listedAt', now)
  if redis.call('HGET', listing_key, 'resync') == '1' then
    redis.call('HDEL', listing_key, 'resync', 'pageCursor')
    redis.call('HSET', listing_key, 'mode', 'full')
  end
  local mode = redis.call('HGET', listing_key, 'mode') or 'continue'
  local page = redis.call('HGET', listing_key, 'pageCursor')
  if page then return { mode, page } end
  local cursor = redis.call('HGET', listing_key, 'cursor')
  if mode == 'full' or not cursor then
    -- A full listing from scratch supersedes whatever was listed before and not applied yet: the
    -- reconcile after it deletes what is gone.
    redis.call('DEL', changes_key)
    redis.call('HSET', listing_key, 'mode', 'full')
    return { 'full', '' }
  end
  return { mode, cursor }
end
