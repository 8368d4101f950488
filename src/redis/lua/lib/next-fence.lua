-- Moves an account's fencing token on and returns it: one above the last token granted, and at
-- least Redis's clock in milliseconds. A plain counter goes back when Redis loses a write (a
-- failover to a replica the grant had not reached, a restore from an older backup), and the next
-- grant would give another owner the very token the lost grant gave: two processes would then pass
-- every fenced check of one account. A token issued later than the lost one (a failover takes
-- seconds) is above it by the clock. Used by lease-acquire.lua, account-unlink.lua and
-- layout-upgrade.lua.
local function next_fence(mailbox_key)
  local now = redis.call('TIME')
  local clock_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local token = math.max(tonumber(redis.call('HGET', mailbox_key, 'fence') or '0') + 1, clock_ms)
  -- As digits: Lua would write a number this large as 1.79e+12.
  local digits = string.format('%d', token)
  redis.call('HSET', mailbox_key, 'fence', digits)
  return digits
end
