-- keys: 2
-- Give a lease back (passivation, shutdown) so another process can take the account at once, and
-- say, in the same step, whether the mailbox has work: a wake published while the owner was letting
-- go reached it too late, and after this step nobody else would act on it (see AccountHost.passivate).
-- KEYS[1] lease, KEYS[2] mailbox; ARGV[1] "<owner>|<token>".
-- Returns { 1 when released (0 when it was not ours), 1 when the mailbox is running, or dirty and
-- not parked (a parked account's webhooks wait for its re-link) }.
local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  released = 1
end
local box = redis.call('HMGET', KEYS[2], 'status', 'dirty')
local work = 0
if box[1] == 'running' or (box[2] == '1' and box[1] ~= 'parked') then work = 1 end
return { released, work }
