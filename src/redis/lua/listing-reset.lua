-- keys: 2
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Dropbox answered 409 reset (or another list_folder/continue error): drop the cursor's progress
-- and the unapplied changes; the next listing is a full one, reconciled against the local mirror.
-- The committed cursor is kept until that reconcile commits a new one.
-- KEYS[1] listing hash, KEYS[2] unapplied changes (list)
redis.call('HDEL', KEYS[1], 'pageCursor')
redis.call('HSET', KEYS[1], 'mode', 'full')
redis.call('DEL', KEYS[2])
return 1
