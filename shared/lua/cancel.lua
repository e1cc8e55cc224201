-- Cancel a running crawl: drop its queued jobs and mark it cancelled. Jobs already running see
-- the state when they close and queue nothing more.
-- KEYS: meta, pending, queue
-- ARGV: finished_at, job_prefix
-- Returns the number of jobs dropped, -1 if there is no such crawl, -2 if it is not running.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'running' then
  return -2
end
local ids = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('DEL', ARGV[2] .. id)
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
return #ids
