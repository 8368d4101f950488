-- Moves an account's listing state out of the old layout's listing hash (keys.ts, oldLayoutKeys):
-- the cursors to their string keys, mode, resync and ignoreRules to the mailbox; then deletes the
-- hash. Nothing when there is no such hash. What the hash holds wins over the new keys: it exists
-- only when a version before the new layout wrote it, and that version wrote no new key.
-- Used by layout-upgrade.lua (a linked account, at engine start) and account-link.lua (an account
-- unlinked before the upgrade keeps its listing for a re-link to carry on from).
local function upgrade_listing(listing_key, mailbox_key, cursor_key, page_cursor_key)
  if redis.call('EXISTS', listing_key) == 0 then return end
  local old = redis.call('HMGET', listing_key, 'cursor', 'pageCursor', 'mode', 'resync', 'ignoreRules')
  if old[1] then redis.call('SET', cursor_key, old[1]) end
  if old[2] then redis.call('SET', page_cursor_key, old[2]) else redis.call('DEL', page_cursor_key) end
  -- 'continue' is the mode with no field.
  if old[3] == 'full' then redis.call('HSET', mailbox_key, 'mode', 'full') else redis.call('HDEL', mailbox_key, 'mode') end
  if old[4] then redis.call('HSET', mailbox_key, 'resync', old[4]) end
  if old[5] then redis.call('HSET', mailbox_key, 'ignoreRules', old[5]) end
  redis.call('DEL', listing_key)
end
