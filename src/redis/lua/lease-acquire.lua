-- keys: 4
-- uses: read-link, next-fence
-- Take the lease on one account. Every grant moves the fencing token on (lib/next-fence.lua), which every
-- write of the actor carries, so a process that paused past its lease has its writes refused.
-- The new owner also gets, in the same step, what it restores the actor from: starting an actor
-- is then one round trip, and nothing can change that state between the grant and the read.
-- KEYS[1] lease (string "<owner>|<token>", with a TTL), KEYS[2] mailbox (holds the `fence`
-- token, an idle actor's fields and the link's settings; no TTL), KEYS[3] actor snapshot hash,
-- KEYS[4] credentials (the link: what the actor's first Dropbox call needs, read here rather than
-- in a command of its own)
-- ARGV[1] owner id, ARGV[2] ttl ms, ARGV[3...] the mailbox fields that belong to the actor
-- Returns { token, actor hash as HGETALL, those mailbox fields as HMGET, the link (lib/read-link.lua) }
-- when the caller holds the lease, { 0 } when another owner holds it. The link holds the sealed
-- credentials' bytes: the caller reads the reply as bytes (runScriptForBytes).
local function granted(token)
  return { tonumber(token), redis.call('HGETALL', KEYS[3]), redis.call('HMGET', KEYS[2], unpack(ARGV, 3)), read_link(KEYS[4], KEYS[2]) }
end
local holder = redis.call('GET', KEYS[1])
-- Our own lease gets a new token too: the process starts an actor only when it has none of the
-- account, so a lease of ours still here belongs to an actor it stopped (its release failed or was
-- lost), whose step may still be running. A new token fences that step's late writes out.
if holder and string.match(holder, '^(.*)|%d+$') ~= ARGV[1] then
  return { 0 }
end
local token = next_fence(KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return granted(token)
