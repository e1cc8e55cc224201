-- Resume a paused crawl: its parked jobs go back to arq's queue, runnable now.
-- KEYS: meta, parked, queue
-- ARGV: now_ms
-- Returns the number of jobs queued again, -1 if there is no such crawl, -2 if it is not paused.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'paused' then
  return -2
end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[3], tonumber(ARGV[1]), id)
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'running')
return #ids
