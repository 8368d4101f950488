-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Moves an entry to a new path in a single atomic step, keeping its id, created, updated and html.
--
-- KEYS[1] entryIds  HASH path_lower -> entry id
-- KEYS[2] entries   HASH entry id -> entry JSON
-- ARGV[1] source path_lower
-- ARGV[2] destination path_lower
-- ARGV[3] destination display path
--
-- Returns the moved entry's JSON, or nil when the source has no entry (it never had one, or this
-- rename already happened and is being replayed).
--
-- If the destination already holds a different entry, that entry is dropped: Dropbox reports the
-- destination as now holding the moved file, so the old entry there describes content that no
-- longer exists.

local from, to = ARGV[1], ARGV[2]

local id = redis.call('HGET', KEYS[1], from)
if not id then
  return nil
end

local stored_json = redis.call('HGET', KEYS[2], id)
if not stored_json then
  -- A dangling id (half-written state from outside this script): nothing to move, clean it up.
  redis.call('HDEL', KEYS[1], from)
  return nil
end

local displaced_id = redis.call('HGET', KEYS[1], to)
if displaced_id and displaced_id ~= id then
  redis.call('HDEL', KEYS[2], displaced_id)
end

-- Delete before set: for a case-only rename `from` and `to` are the same field.
redis.call('HDEL', KEYS[1], from)
redis.call('HSET', KEYS[1], to, id)

local entry = cjson.decode(stored_json)
entry.path = ARGV[3]
local json = cjson.encode(entry)
redis.call('HSET', KEYS[2], id, json)
return json
