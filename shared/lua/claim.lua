-- Claim up to `want` due jobs of the queue for one worker, and start each as arq's worker does,
-- all in one round trip: arq's rule for starting a job (due, not running elsewhere) applied to
-- the head of the queue, then what arq's run_job reads and counts before it runs a job (the
-- payload, one more try, the abort mark taken off). arq instead reads the first 100 ids, claims
-- them one by one (WATCH, EXISTS, ZSCORE, MULTI/EXEC each), then starts each in a round trip of
-- its own; and workers that read the same head collide on the same ids.
-- KEYS: queue, abort set
-- ARGV: now_ms (the worker's clock, as arq compares it), in_progress_ms, want,
--       in_progress_prefix, scan_max (ids looked at, at most), job_prefix, retry_prefix,
--       retry_ttl_s
-- Returns {job_id, score, payload (nil if gone), try, aborted (1 or 0), job_id, ...}.
-- Running jobs stay in the queue until they finish, so the scan skips them.
local now, want, scan_max = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5])
local claimed, taken, offset = {}, 0, 0
while taken < want and offset < scan_max do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', offset, 100)
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    local id = batch[i]
    local key = ARGV[4] .. id
    if redis.call('EXISTS', key) == 0 then
      redis.call('SET', key, '1', 'PX', ARGV[2])
      local retry = ARGV[7] .. id
      local try = redis.call('INCR', retry)
      redis.call('EXPIRE', retry, ARGV[8])
      local n = #claimed
      claimed[n + 1] = id
      claimed[n + 2] = batch[i + 1]
      claimed[n + 3] = redis.call('GET', ARGV[6] .. id)  -- false (a nil reply) if gone
      claimed[n + 4] = try
      claimed[n + 5] = redis.call('ZREM', KEYS[2], id)
      taken = taken + 1
      if taken == want then
        break
      end
    end
  end
  offset = offset + 100
end
return claimed
