-- Pause a running crawl: no URL of it is promoted from now on; its jobs already queued give
-- their URL back to the backlog when a worker starts them (claim.lua says 'paused').
-- KEYS: meta
-- Returns 0, -1 if there is no such crawl, -2 if it is not running.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'running' then
  return -2
end
redis.call('HSET', KEYS[1], 'state', 'paused')
return 0
