-- Cancel a crawl: drop its queued and parked jobs, ask the workers running its other jobs to
-- abort them (arq's abort set), and mark it cancelled.
-- KEYS: meta, pending, queue, parked, tries, arq abort set
-- ARGV: finished_at, job_prefix, in_progress_prefix, now_ms
-- Returns {dropped, aborted}, or {-1, 0} if there is no such crawl, {-2, 0} if it has ended.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {-1, 0}
end
if state ~= 'running' and state ~= 'paused' then
  return {-2, 0}
end
local dropped, aborted = 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[3] .. id) == 1 then
    redis.call('ZADD', KEYS[6], tonumber(ARGV[4]), id)
    aborted = aborted + 1
  else
    redis.call('ZREM', KEYS[3], id)
    redis.call('DEL', ARGV[2] .. id)
    dropped = dropped + 1
  end
end
redis.call('DEL', KEYS[2], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
return {dropped, aborted}
