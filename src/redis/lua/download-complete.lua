-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- A file is on disk: record it and take it off the queue, unless a newer listing superseded it.
-- KEYS[1] queue, KEYS[2] files, KEYS[3] file ids
-- ARGV[1] path_lower, ARGV[2] the rev written, ARGV[3] the file record JSON, ARGV[4] the file id
-- Returns 1 when recorded, 0 when the queue now holds another rev (the caller discards its file).
local queued = redis.call('HGET', KEYS[1], ARGV[1])
if queued and cjson.decode(queued).rev ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous then
  local old = cjson.decode(previous)
  if old.id and old.id ~= ARGV[4] and redis.call('HGET', KEYS[3], old.id) == ARGV[1] then
    redis.call('HDEL', KEYS[3], old.id)
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
return 1
