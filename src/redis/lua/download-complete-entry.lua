-- keys: 5
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- A downloaded post is on disk: set its entry and complete the download in one step, so a
-- downloaded post costs one round trip instead of two in series (entry-set.lua, then
-- download-complete.lua). Both halves keep the rules of those scripts exactly, in the same order:
-- the entry is set even when a newer listing superseded the rev (as before, when the two ran one
-- after the other: the file on disk is this rev, and the newer rev's download follows).
-- test/entries/entry-store.test.ts runs the entry store's rules against both paths.
--
-- KEYS[1] queue, KEYS[2] files, KEYS[3] file ids   (as download-complete.lua)
-- KEYS[4] entryIds, KEYS[5] entries                (as entry-set.lua)
-- ARGV[1] path_lower, ARGV[2] the rev written, ARGV[3] the file record JSON, ARGV[4] the file id
-- ARGV[5..11] as entry-set.lua's ARGV[1..7]: path_lower, display path, title, html, updated,
--             fresh id (used only when the path has no entry yet), now (`created` of a new entry)
--
-- Returns { completed (0/1), entry JSON, applied (0/1), created (0/1) }; completed is 0 when the
-- queue now holds another rev (as download-complete.lua).

local function set_entry()
  local path_lower = ARGV[5]
  local updated = tonumber(ARGV[9])

  local id = redis.call('HGET', KEYS[4], path_lower)
  if id then
    local stored_json = redis.call('HGET', KEYS[5], id)
    if stored_json then
      local entry = cjson.decode(stored_json)
      -- Strictly older loses; an equal timestamp is a legitimate re-render and is applied.
      if entry.updated > updated then
        return stored_json, 0, 0
      end
      entry.path = ARGV[6]
      entry.title = ARGV[7]
      entry.html = ARGV[8]
      entry.updated = updated
      local json = cjson.encode(entry)
      redis.call('HSET', KEYS[5], id, json)
      return json, 1, 0
    end
    -- A dangling id: recreate the entry under the id already published for this path.
  else
    id = ARGV[10]
    redis.call('HSET', KEYS[4], path_lower, id)
  end

  local json = cjson.encode({
    id = id,
    path = ARGV[6],
    title = ARGV[7],
    html = ARGV[8],
    created = tonumber(ARGV[11]),
    updated = updated,
  })
  redis.call('HSET', KEYS[5], id, json)
  return json, 1, 1
end

local function complete_download()
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
end

local json, applied, created = set_entry()
return { complete_download(), json, applied, created }
