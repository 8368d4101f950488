-- keys: 2
-- uses: read-link
-- An account's link, for a reader that is not starting its actor (the lease grant reads the same).
-- KEYS[1] credentials, KEYS[2] mailbox
-- Returns { credentials, ignore, linkedAt } (lib/read-link.lua).
return read_link(KEYS[1], KEYS[2])
