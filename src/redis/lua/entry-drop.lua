-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Drops one entry, or every entry at or under a folder, in a single atomic step. Idempotent:
-- dropping what is already gone drops nothing.
--
-- KEYS[1] entryIds  HASH path_lower -> entry id
-- KEYS[2] entries   HASH entry id -> entry JSON
-- ARGV[1] path_lower of the file or folder
-- ARGV[2] 'path' (exactly that path) or 'under' (that path and everything below it)
--
-- Returns the number of entries dropped.
--
-- 'under' walks HKEYS of entryIds: O(entries of the account) and Redis is blocked meanwhile. An
-- account holds thousands of entries at most (about a millisecond per few thousand); if that
-- ever grows to hundreds of thousands, keep a per-folder index instead.

local target, mode = ARGV[1], ARGV[2]

local function drop(path_lower)
  local id = redis.call('HGET', KEYS[1], path_lower)
  if not id then
    return 0
  end
  redis.call('HDEL', KEYS[1], path_lower)
  redis.call('HDEL', KEYS[2], id)
  return 1
end

if mode == 'path' then
  return drop(target)
end

if mode ~= 'under' then
  return redis.error_reply('entry-drop: mode must be "path" or "under", got ' .. tostring(mode))
end

-- Plain prefix comparison (no Lua patterns, whose magic characters can appear in paths); the
-- trailing slash keeps "/a" from claiming "/ab.md".
local prefix = target .. '/'
local prefix_length = #prefix
local dropped = 0
for _, path_lower in ipairs(redis.call('HKEYS', KEYS[1])) do
  if path_lower == target or string.sub(path_lower, 1, prefix_length) == prefix then
    dropped = dropped + drop(path_lower)
  end
end
return dropped
