-- keys: 6
-- uses: upgrade-listing, next-fence
-- Converts one account from the old layout (keys.ts, oldLayoutKeys) in one step: the account
-- hash's credentials to the creds key (in the form the caller made of them: a text envelope turned
-- into bytes, which Lua cannot decode), its ignore and linkedAt to the mailbox, the listing hash
-- as lib/upgrade-listing.lua says; both old hashes deleted. Compare-and-set on the credentials the
-- caller read, so a link between that read and this step is not overwritten with older ones.
-- The fence is bumped: a process of the old version still running the account's actor has its
-- next write refused (it would write the old layout), and stops.
-- KEYS[1] old account hash, KEYS[2] old listing hash, KEYS[3] mailbox (holds the fence),
-- KEYS[4] creds, KEYS[5] cursor, KEYS[6] page cursor
-- ARGV[1] the old hash's credentials as the caller read them ('' when none), ARGV[2] what to store
-- Returns 1 when converted, 0 when there was nothing left to convert (done before, by this process
-- or another), -1 when the credentials changed since the caller read them (read again).
local has_account = redis.call('EXISTS', KEYS[1]) == 1
if not has_account and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if has_account then
  local old = redis.call('HMGET', KEYS[1], 'credentials', 'ignore', 'linkedAt')
  if (old[1] or '') ~= ARGV[1] then return -1 end
  if old[1] then redis.call('SET', KEYS[4], ARGV[2]) end
  -- No patterns is no field, as account-link.lua writes it.
  if old[2] and old[2] ~= '' and old[2] ~= '[]' then redis.call('HSET', KEYS[3], 'ignore', old[2]) else redis.call('HDEL', KEYS[3], 'ignore') end
  if old[3] then redis.call('HSET', KEYS[3], 'linkedAt', old[3]) end
  redis.call('DEL', KEYS[1])
end
upgrade_listing(KEYS[2], KEYS[3], KEYS[5], KEYS[6])
next_fence(KEYS[3])
return 1
