-- Upserts the entry for one path, so concurrent writers for the same new path agree on one id and
-- an older version can never overwrite a newer one. Used by entry-set.lua and
-- download-complete-entry.lua: one copy of the rules.
--
-- ids_key      HASH path_lower -> entry id
-- entries_key  HASH entry id -> entry JSON
-- args[1] path_lower (as Dropbox gave it; never recomputed)
-- args[2] display path
-- args[3] title
-- args[4] html
-- args[5] updated (epoch ms)
-- args[6] fresh id, used only when the path has no entry yet (ids come from the caller because
--         Lua has no good randomness and scripts must stay deterministic for replication)
-- args[7] now (epoch ms), the `created` of a new entry; the caller's clock, not Redis's
--
-- Returns entry JSON, applied (0/1), created (0/1).
local function set_entry(ids_key, entries_key, args)
  local path_lower = args[1]
  local updated = tonumber(args[5])

  local id = redis.call('HGET', ids_key, path_lower)
  if id then
    local stored_json = redis.call('HGET', entries_key, id)
    if stored_json then
      local entry = cjson.decode(stored_json)
      -- Strictly older loses; an equal timestamp is a legitimate re-render (e.g. a new renderer
      -- version) and is applied.
      if entry.updated > updated then
        return stored_json, 0, 0
      end
      entry.path = args[2]
      entry.title = args[3]
      entry.html = args[4]
      entry.updated = updated
      local json = cjson.encode(entry)
      redis.call('HSET', entries_key, id, json)
      return json, 1, 0
    end
    -- The id points at nothing (a half-written state from outside this script): heal it by
    -- recreating the entry under the id already published for this path.
  else
    id = args[6]
    redis.call('HSET', ids_key, path_lower, id)
  end

  local json = cjson.encode({
    id = id,
    path = args[2],
    title = args[3],
    html = args[4],
    created = tonumber(args[7]),
    updated = updated,
  })
  redis.call('HSET', entries_key, id, json)
  return json, 1, 1
end
