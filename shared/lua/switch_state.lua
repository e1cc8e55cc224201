-- Move a crawl from one state to another: pause a running crawl (no URL of it is promoted from
-- then on; its jobs already queued give their URL back to the backlog when a worker starts
-- them: claim.lua says 'paused'), or resume a paused one (its hosts are filled afterwards, a
-- batch at a time: fill_hosts.lua).
-- KEYS: meta
-- ARGV: the state the crawl must be in, the state it moves to
-- Returns 0, -1 if there is no such crawl, -2 if it is not in the first state.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= ARGV[1] then
  return -2
end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
return 0
