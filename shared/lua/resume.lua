-- Resume a paused crawl; its hosts are filled afterwards, a batch at a time (fill_hosts.lua).
-- KEYS: meta
-- Returns 0, -1 if there is no such crawl, -2 if it is not paused.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'paused' then
  return -2
end
redis.call('HSET', KEYS[1], 'state', 'running')
return 0
