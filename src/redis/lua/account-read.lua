-- keys: 1
-- An account's link, for a reader that is not starting its actor (the lease grant reads the same).
-- KEYS[1] account hash
-- Returns { credentials, ignore, linkedAt }, each nil when absent. The credentials are bytes (a
-- sealed envelope): the caller reads this reply as bytes (runScriptForBytes).
return redis.call('HMGET', KEYS[1], 'credentials', 'ignore', 'linkedAt')
