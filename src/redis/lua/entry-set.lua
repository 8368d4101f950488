-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Upserts the entry for one path in a single atomic step, so concurrent writers for the same new
-- path agree on one id and an older version can never overwrite a newer one.
--
-- KEYS[1] entryIds  HASH path_lower -> entry id
-- KEYS[2] entries   HASH entry id -> entry JSON
-- ARGV[1] path_lower (as Dropbox gave it; never recomputed)
-- ARGV[2] display path
-- ARGV[3] title
-- ARGV[4] html
-- ARGV[5] updated (epoch ms)
-- ARGV[6] fresh id, used only when the path has no entry yet (ids come from the caller because
--         Lua has no good randomness and scripts must stay deterministic for replication)
-- ARGV[7] now (epoch ms), the `created` of a new entry; the caller's clock, not Redis's
--
-- Returns { entry JSON, applied (0/1), created (0/1) }.

local path_lower = ARGV[1]
local updated = tonumber(ARGV[5])

local id = redis.call('HGET', KEYS[1], path_lower)
if id then
  local stored_json = redis.call('HGET', KEYS[2], id)
  if stored_json then
    local entry = cjson.decode(stored_json)
    -- Strictly older loses; an equal timestamp is a legitimate re-render (e.g. a new renderer
    -- version) and is applied.
    if entry.updated > updated then
      return { stored_json, 0, 0 }
    end
    entry.path = ARGV[2]
    entry.title = ARGV[3]
    entry.html = ARGV[4]
    entry.updated = updated
    local json = cjson.encode(entry)
    redis.call('HSET', KEYS[2], id, json)
    return { json, 1, 0 }
  end
  -- The id points at nothing (a half-written state from outside this script): heal it by
  -- recreating the entry under the id already published for this path.
else
  id = ARGV[6]
  redis.call('HSET', KEYS[1], path_lower, id)
end

local json = cjson.encode({
  id = id,
  path = ARGV[2],
  title = ARGV[3],
  html = ARGV[4],
  created = tonumber(ARGV[7]),
  updated = updated,
})
redis.call('HSET', KEYS[2], id, json)
return { json, 1, 1 }
