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
-- A claimed job stays in the queue, as arq keeps it, but its score moves to the end of its
-- in-progress mark (the score returned): the scan then only meets due jobs, never the fleet's
-- running ones, and the job of a worker that died is due again when its mark expires.
local now, want, scan_max = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5])
local claimed, taken, offset, looked = {}, 0, 0, 0
-- claimed jobs leave the due range, so the next batch starts past the skipped ones only
while taken < want and looked < scan_max do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', offset, 100)
  if #batch == 0 then
    break
  end
  looked = looked + #batch / 2
  for i = 1, #batch, 2 do
    local id = batch[i]
    local key = ARGV[4] .. id
    if redis.call('EXISTS', key) == 1 then
      offset = offset + 1
    else
      redis.call('SET', key, '1', 'PX', ARGV[2])
      local retry = ARGV[7] .. id
      local try = redis.call('INCR', retry)
      redis.call('EXPIRE', retry, ARGV[8])
      local n = #claimed
      local until_ms = tonumber(now) + tonumber(ARGV[2])
      redis.call('ZADD', KEYS[1], 'XX', until_ms, id)
      claimed[n + 1] = id
      claimed[n + 2] = until_ms
      claimed[n + 3] = redis.call('GET', ARGV[6] .. id)  -- false (a nil reply) if gone
      claimed[n + 4] = try
      claimed[n + 5] = redis.call('ZREM', KEYS[2], id)
      taken = taken + 1
      if taken == want then
        break
      end
    end
  end
end
return claimed
