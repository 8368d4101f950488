-- keys: 2
-- Take (or keep) the lease on one account. A new grant increments the fencing token, which every
-- write of the actor carries, so a process that paused past its lease has its writes refused.
-- KEYS[1] lease (string "<owner>|<token>", with a TTL), KEYS[2] the hash holding the `fence`
-- counter (the mailbox; no TTL)
-- ARGV[1] owner id, ARGV[2] ttl ms
-- Returns the token when the caller holds the lease, 0 when another owner holds it.
local holder = redis.call('GET', KEYS[1])
if holder then
  local owner, token = string.match(holder, '^(.*)|(%d+)$')
  if owner == ARGV[1] and token == redis.call('HGET', KEYS[2], 'fence') then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('HINCRBY', KEYS[2], 'fence', 1)
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
