-- Moves an account's fencing token on and returns it: one above the last token granted, and at
-- least Redis's clock in microseconds. A plain counter goes back when Redis loses a write (a
-- failover to a replica the grant had not reached, a restore from an older backup), and the next
-- grant would give another owner the very token the lost grant gave: two processes would then pass
-- every fenced check of one account. A grant made later by the clock than the lost one (a failover
-- takes seconds) gets a larger token. Used by lease-acquire.lua, account-unlink.lua and
-- layout-upgrade.lua. (Microseconds since 1970 stay below 2^53 until the 23rd century: exact as a
-- Lua number, a Redis integer and a JavaScript number.)
-- TIME before a write needs the script replicated by its effects: the default from Redis 5, the
-- only way from 7 (where this call does nothing); on 6.2 it holds even where the setting was off.
redis.replicate_commands()
local function next_fence(mailbox_key)
  local now = redis.call('TIME')
  local clock_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local token = math.max(tonumber(redis.call('HGET', mailbox_key, 'fence') or '0') + 1, clock_us)
  -- As digits: Lua's tostring writes a number of more than 14 digits with an exponent.
  local digits = string.format('%d', token)
  redis.call('HSET', mailbox_key, 'fence', digits)
  return digits
end
