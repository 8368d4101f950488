-- keys: 5
-- Everything an account's status shows, in one round trip and one consistent view. Read with
-- separate commands it was ten (the link, the mailbox, the queue's length, the actor in a
-- transaction, the set-aside files): a million for `mailroom status` over 100,000 accounts.
-- KEYS[1] credentials, KEYS[2] mailbox, KEYS[3] download queue, KEYS[4] actor hash, KEYS[5] set-aside files
-- ARGV: the mailbox fields to read, in the caller's order.
-- Returns 0 when the account is not linked (no credentials); else { the mailbox fields (HMGET),
-- the queue's length, the actor hash (HGETALL), the set-aside files (HGETALL) }.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return {
  redis.call('HMGET', KEYS[2], unpack(ARGV)),
  redis.call('HLEN', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
}
