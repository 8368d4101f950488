-- keys: 1
-- Extend a lease the caller still holds. KEYS[1] lease; ARGV[1] "<owner>|<token>", ARGV[2] ttl ms.
-- Returns 1 when extended, 0 when the lease expired or another owner took it (stop the actor).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
