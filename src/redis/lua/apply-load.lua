-- keys: 7
-- Everything the apply step reads, in one step: the unapplied changes with their listing state,
-- the index of what is on disk, and the account's ignore patterns. One consistent view, and one
-- command instead of seven on every run.
-- KEYS[1] unapplied changes (list), KEYS[2] listing hash, KEYS[3] files, KEYS[4] file-ids,
-- KEYS[5] ignored, KEYS[6] download queue, KEYS[7] account hash
-- Returns { changes, listing pageCursor, mode, ignoreRules, files, fileIds, ignored, queue, ignore }
-- with each hash as HGETALL's flat list and a missing field as nil.
local listing = redis.call('HMGET', KEYS[2], 'pageCursor', 'mode', 'ignoreRules')
return {
  redis.call('LRANGE', KEYS[1], 0, -1),
  listing[1], listing[2], listing[3],
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  redis.call('HGET', KEYS[7], 'ignore'),
}
