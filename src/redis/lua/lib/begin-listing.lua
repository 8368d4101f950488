-- Start (or resume) a listing: clear the dirty flag first, so any webhook from now on makes the run
-- list once more, stamp when the account was listed, and say where to start.
-- Used by listing-begin.lua (a run's own start) and mailbox-mark-dirty.lua (a webhook that wakes an
-- idle actor held in memory starts its listing in the same step): one copy of the rules.
-- mailbox_key: the account's mailbox (holds `mode` and `resync`); page_cursor_key, cursor_key: the
-- page cursor and the committed cursor (strings); changes_key: the unapplied changes (list)
-- now: epoch ms
-- Returns { mode, from } where from = '' means "list_folder from scratch".
local function begin_listing(mailbox_key, page_cursor_key, cursor_key, changes_key, now)
  redis.call('HSET', mailbox_key, 'dirty', '0', 'listedAt', now)
  if redis.call('HGET', mailbox_key, 'resync') == '1' then
    redis.call('HDEL', mailbox_key, 'resync')
    redis.call('DEL', page_cursor_key)
    redis.call('HSET', mailbox_key, 'mode', 'full')
  end
  local mode = redis.call('HGET', mailbox_key, 'mode') or 'continue'
  local page = redis.call('GET', page_cursor_key)
  if page then return { mode, page } end
  local cursor = redis.call('GET', cursor_key)
  if mode == 'full' or not cursor then
    -- A full listing from scratch supersedes whatever was listed before and not applied yet: the
    -- reconcile after it deletes what is gone.
    redis.call('DEL', changes_key)
    redis.call('HSET', mailbox_key, 'mode', 'full')
    return { 'full', '' }
  end
  return { mode, cursor }
end
