-- keys: 10
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- The end of `applying`: the plan's effects on the local index, the new downloads, and the cursor,
-- all in one step. Until it runs, a restart re-applies the same changes (every local effect is
-- idempotent); after it, they are gone and the committed cursor moves on.
-- KEYS[1] mailbox (holds `mode`, `ignoreRules`), KEYS[2] page cursor (string), KEYS[3] committed
-- cursor (string), KEYS[4] changes (list), KEYS[5] queue, KEYS[6] files, KEYS[7] file ids, KEYS[8] ignored,
-- KEYS[9] set-aside files (download-set-aside.lua), KEYS[10] the apply's frozen ignore patterns (apply-moves.lua)
-- ARGV[1] the listed page the plan covered (its page id: SHA-1 hex of the stored page cursor, as
-- lib/apply-read.lua gave it), ARGV[2] how many changes it consumed,
-- ARGV[3] JSON { queue, files, fileIds, ignored }, each { set: [[field, value], ...], del: [field, ...] },
-- ARGV[4] the ignore rules the plan used, ARGV[5] the largest queue to return.
-- Returns 0 when the plan was already committed; else { 1, queue } with the queue as it stands now
-- (HGETALL's flat list) when it holds at most ARGV[5] items, so the download step that follows need
-- not read it back, or { 1 } when it holds more.
local page = redis.call('GET', KEYS[2])
if not page or redis.sha1hex(page) ~= ARGV[1] then return 0 end
-- A file set aside is tried again once a listing names its path again, or deletes a folder above it
-- or puts a file there (the plan has queued it afresh if it still needs a download); a full listing
-- names everything again. A folder listed above it says nothing of it. Rare, so the batch is read
-- back only when something is set aside: once, into a table, then each set-aside path looks up
-- itself and the folders above it.
if redis.call('EXISTS', KEYS[9]) == 1 then
  if redis.call('HGET', KEYS[1], 'mode') == 'full' then
    redis.call('DEL', KEYS[9])
  else
    local named, wiped = {}, {}
    for _, raw in ipairs(redis.call('LRANGE', KEYS[4], 0, tonumber(ARGV[2]) - 1)) do
      local entry = cjson.decode(raw)
      named[entry.pathLower] = true
      if entry.tag ~= 'folder' then wiped[entry.pathLower] = true end
    end
    for _, path in ipairs(redis.call('HKEYS', KEYS[9])) do
      local again = named[path]
      local from = 2
      while not again do
        local slash = string.find(path, '/', from, true)
        if not slash then break end
        again = wiped[string.sub(path, 1, slash - 1)]
        from = slash + 1
      end
      if again then redis.call('HDEL', KEYS[9], path) end
    end
  end
end
local ops = cjson.decode(ARGV[3])
local targets = { queue = KEYS[5], files = KEYS[6], fileIds = KEYS[7], ignored = KEYS[8] }
for name, key in pairs(targets) do
  local op = ops[name]
  if op then
    for _, field in ipairs(op.del or {}) do redis.call('HDEL', key, field) end
    for _, pair in ipairs(op.set or {}) do redis.call('HSET', key, pair[1], pair[2]) end
  end
end
redis.call('LTRIM', KEYS[4], tonumber(ARGV[2]), -1)
redis.call('SET', KEYS[3], page)
redis.call('DEL', KEYS[2], KEYS[10])
-- Continue from the cursor from now on: that is the mode with no field (the mailbox stays small).
redis.call('HDEL', KEYS[1], 'mode', 'moves')
redis.call('HSET', KEYS[1], 'ignoreRules', ARGV[4])
if redis.call('HLEN', KEYS[5]) <= tonumber(ARGV[5]) then return { 1, redis.call('HGETALL', KEYS[5]) } end
return { 1 }
