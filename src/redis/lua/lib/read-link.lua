-- An account's link: { credentials, ignore, linkedAt }, each nil when absent. The credentials are
-- bytes (a sealed envelope), so a caller reads the reply of a script that returns this as bytes
-- (runScriptForBytes). Used by account-read.lua and lease-acquire.lua.
local function read_link(credentials_key, mailbox_key)
  local settings = redis.call('HMGET', mailbox_key, 'ignore', 'linkedAt')
  return { redis.call('GET', credentials_key), settings[1], settings[2] }
end
