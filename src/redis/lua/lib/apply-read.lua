-- What the apply step reads, in one consistent step: the unapplied changes with their listing
-- state, the part of the index of what is on disk that the batch can touch, and the account's
-- ignore patterns. Used by apply-load.lua (the apply step's own read) and listing-save-page.lua
-- (the last page of a listing hands the apply step its input in the same step).
-- Returns { changes, pageId, mode, ignoreRules, files, fileIds, ignored, queue, ignore, scope, moves }
-- with each hash part as HGETALL's flat list and a missing field as nil. pageId names the listed
-- page the batch ends with: the SHA-1 (hex) of its stored cursor, nil (or '') when there is none;
-- the cursor itself may be bytes (src/sync/stored-cursor.ts), and this reply is read as text.
-- scope says what was read: 'whole' (every hash whole), 'targeted' (only what this batch can
-- touch), 'none' (no page to apply). moves is how far an apply cut short had got with its
-- moves ('staging <page id>' or 'placed <page id>', apply-moves.lua), if it had begun them. Once it
-- had, `ignore` is the patterns it planned with (apply-moves.lua keeps them), not the account's now.
--
-- The rule is src/sync/index-reads.ts (its comment says why it is enough); a test runs both on the
-- same cases. In short: the whole index for a full listing, for ignore rules that may have changed,
-- or when a listed path is a folder in `files` (what is under it could go); otherwise `files` at
-- each listed path and the folders above it; `file-ids` for the listed files' ids and those of the
-- records read; `queue` and `ignored` at or under a listed path.
local function apply_read(changes_key, mailbox_key, page_cursor_key, files_key, file_ids_key, ignored_key, queue_key, apply_rules_key)
  local state = redis.call('HMGET', mailbox_key, 'mode', 'ignoreRules', 'ignore', 'moves')
  local mode, ignore_rules, ignore, moves = state[1], state[2], state[3], state[4]
  local frozen = redis.call('GET', apply_rules_key)
  if frozen then ignore = frozen end
  local page_cursor = redis.call('GET', page_cursor_key)
  local changes = redis.call('LRANGE', changes_key, 0, -1)

  local page_id = page_cursor
  if page_cursor and page_cursor ~= '' then page_id = redis.sha1hex(page_cursor) end
  local function reply(scope, files, file_ids, ignored, queue)
    return { changes, page_id, mode, ignore_rules, files, file_ids, ignored, queue, ignore, scope, moves }
  end
  local function whole()
    return reply('whole', redis.call('HGETALL', files_key), redis.call('HGETALL', file_ids_key), redis.call('HGETALL', ignored_key), redis.call('HGETALL', queue_key))
  end

  if not page_cursor or page_cursor == '' then return reply('none', {}, {}, {}, {}) end
  if mode == 'full' then return whole() end
  -- apply-changes.ts compares ignoreRules with JSON.stringify of the parsed patterns; cjson does not
  -- encode like JSON.stringify, so compare the stored strings (both written by JSON.stringify):
  -- equal means unchanged, unequal at worst reads the whole index for nothing.
  local current_rules = ignore
  if not current_rules or current_rules == '' then current_rules = '[]' end
  if ignore_rules and ignore_rules ~= current_rules then return whole() end

  -- The folders above a path as plan-changes.ts walks them: the prefix before every '/' after the first character.
  local function ancestors(path)
    local out, from = {}, 2
    while true do
      local slash = string.find(path, '/', from, true)
      if not slash then return out end
      out[#out + 1] = string.sub(path, 1, slash - 1)
      from = slash + 1
    end
  end

  -- HMGET in chunks (unpack has a stack limit); calls found(field, value) for each field present.
  local function fetch(key, fields, found)
    for first = 1, #fields, 500 do
      local chunk = { unpack(fields, first, math.min(first + 499, #fields)) }
      local values = redis.call('HMGET', key, unpack(chunk))
      for i, field in ipairs(chunk) do
        if values[i] then found(field, values[i]) end
      end
    end
  end

  local listed, listed_file_ids = {}, {}
  for _, line in ipairs(changes) do
    local ok, entry = pcall(cjson.decode, line)
    if not ok or type(entry) ~= 'table' or type(entry.pathLower) ~= 'string' then return whole() end
    listed[entry.pathLower] = true
    if entry.tag == 'file' and type(entry.id) == 'string' then listed_file_ids[#listed_file_ids + 1] = entry.id end
  end

  local wanted, wanted_list = {}, {}
  local function want(path)
    if not wanted[path] then
      wanted[path] = true
      wanted_list[#wanted_list + 1] = path
    end
  end
  for path in pairs(listed) do
    want(path)
    for _, ancestor in ipairs(ancestors(path)) do want(ancestor) end
  end

  local files, record_ids, folder_listed = {}, {}, false
  local function keep_record(path, json)
    local ok, record = pcall(cjson.decode, json)
    if not ok or type(record) ~= 'table' then return false end
    if listed[path] and record.kind == 'folder' then folder_listed = true end
    if type(record.id) == 'string' then record_ids[#record_ids + 1] = record.id end
    files[#files + 1] = path
    files[#files + 1] = json
    return true
  end
  local undecodable = false
  local function keep(path, json) if not keep_record(path, json) then undecodable = true end end

  fetch(files_key, wanted_list, keep)
  if undecodable or folder_listed then return whole() end

  local file_ids, seen_ids, ids = {}, {}, {}
  for _, list in ipairs({ listed_file_ids, record_ids }) do
    for _, id in ipairs(list) do
      if not seen_ids[id] then
        seen_ids[id] = true
        ids[#ids + 1] = id
      end
    end
  end
  fetch(file_ids_key, ids, function(id, path)
    file_ids[#file_ids + 1] = id
    file_ids[#file_ids + 1] = path
  end)

  -- queue and ignored: every field at or under a listed path (an ignored folder has no record of its
  -- own, so only its fields say what is under it). Only their field names are looked through.
  local function at_or_under_listed(path)
    if listed[path] then return true end
    for _, ancestor in ipairs(ancestors(path)) do
      if listed[ancestor] then return true end
    end
    return false
  end
  local function near_listed(key)
    local out = {}
    if #changes == 0 then return out end
    local fields = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if at_or_under_listed(field) then fields[#fields + 1] = field end
    end
    fetch(key, fields, function(field, value)
      out[#out + 1] = field
      out[#out + 1] = value
    end)
    return out
  end

  return reply('targeted', files, file_ids, near_listed(ignored_key), near_listed(queue_key))
end
