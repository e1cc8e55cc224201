-- Pause a running crawl: from now on the jobs its running pages queue go to its parked set, and
-- its jobs already in arq's queue are moved there afterwards, a batch at a time (sweep.lua);
-- any that a worker starts meanwhile is handed back until the crawl is resumed.
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
