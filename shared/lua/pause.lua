-- Pause a running crawl: its queued jobs move from arq's queue to the crawl's parked set, and
-- jobs its running pages queue go there too until it is resumed.
-- KEYS: meta, pending, queue, parked
-- ARGV: in_progress_prefix
-- Returns the number of jobs parked, -1 if there is no such crawl, -2 if it is not running.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'running' then
  return -2
end
local parked = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local score = redis.call('ZSCORE', KEYS[3], id)
  if score and redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZADD', KEYS[4], score, id)
    parked = parked + 1
  end
end
redis.call('HSET', KEYS[1], 'state', 'paused')
return parked
