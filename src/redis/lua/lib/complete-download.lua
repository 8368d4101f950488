-- A file is on disk: record it and take it off the queue, unless a newer listing superseded it.
-- Used by download-complete.lua and download-complete-entry.lua: one copy of the rules.
-- queue_key, files_key, ids_key: the account's queue, files and file-ids hashes
-- args[1] path_lower, args[2] the rev written, args[3] the file record JSON, args[4] the file id
-- Returns 1 when recorded, 0 when the queue now holds another rev (the caller discards its file).
local function complete_download(queue_key, files_key, ids_key, args)
  local queued = redis.call('HGET', queue_key, args[1])
  if queued and cjson.decode(queued).rev ~= args[2] then return 0 end
  redis.call('HDEL', queue_key, args[1])
  local previous = redis.call('HGET', files_key, args[1])
  if previous then
    local old = cjson.decode(previous)
    if old.id and old.id ~= args[4] and redis.call('HGET', ids_key, old.id) == args[1] then
      redis.call('HDEL', ids_key, old.id)
    end
  end
  redis.call('HSET', files_key, args[1], args[3])
  redis.call('HSET', ids_key, args[4], args[1])
  return 1
end
