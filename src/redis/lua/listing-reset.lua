-- keys: 3
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Dropbox answered 409 reset (or another list_folder/continue error): drop the cursor's progress
-- and the unapplied changes; the next listing is a full one, reconciled against the local mirror.
-- The committed cursor is kept until that reconcile commits a new one.
-- KEYS[1] mailbox (holds `mode`), KEYS[2] page cursor (string), KEYS[3] unapplied changes (list)
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'mode', 'full')
return 1
