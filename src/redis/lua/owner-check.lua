-- keys: 0
-- fenced: only the current owner of the account's lease may run this (see scripts.ts)
-- Nothing but the fence check: asked right before a step touches the mirror on disk, so a process
-- that lost the account (paused past its lease, then thawed) stops before writing stale files.
return 1
