-- Cancel a crawl: mark it cancelled and drop its parked jobs. Its jobs in arq's queue, which is
-- shared by all crawls, are dropped or aborted afterwards, a batch at a time (sweep.lua); any
-- that a worker starts meanwhile sees the crawl stopped and ends at once.
-- KEYS: meta, parked, tries, stats
-- ARGV: finished_at, job_prefix
-- Returns the number of parked jobs dropped, -1 if there is no such crawl, -2 if it has ended.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'running' and state ~= 'paused' then
  return -2
end
local parked = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(parked) do
  redis.call('DEL', ARGV[2] .. id)
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[4], 'pending', 0)
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
return #parked
