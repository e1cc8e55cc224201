-- Claim up to `want` due jobs of the queue for one worker, in one round trip: arq's rule for
-- starting a job (due, not running elsewhere) applied to the head of the queue. arq instead
-- reads the first 100 ids and claims them one by one (WATCH, EXISTS, ZSCORE, MULTI/EXEC each),
-- and workers that read the same head collide on the same ids.
-- KEYS: queue
-- ARGV: now_ms (the worker's clock, as arq compares it), in_progress_ms, want,
--       in_progress_prefix, scan_max (ids looked at, at most)
-- Returns {job_id, score, job_id, score, ...}: the jobs claimed, with their queue scores.
-- Running jobs stay in the queue until they finish, so the scan skips them.
local now, want, scan_max = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5])
local claimed, taken, offset = {}, 0, 0
while taken < want and offset < scan_max do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', offset, 100)
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    local key = ARGV[4] .. batch[i]
    if redis.call('EXISTS', key) == 0 then
      redis.call('SET', key, '1', 'PX', ARGV[2])
      claimed[#claimed + 1] = batch[i]
      claimed[#claimed + 1] = batch[i + 1]
      taken = taken + 1
      if taken == want then
        break
      end
    end
  end
  offset = offset + 100
end
return claimed
