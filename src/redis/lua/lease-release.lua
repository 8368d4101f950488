-- keys: 1
-- Give a lease back (passivation, shutdown) so another process can take the account at once.
-- KEYS[1] lease; ARGV[1] "<owner>|<token>". Returns 1 when released, 0 when it was not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
