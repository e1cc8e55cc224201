-- Claim up to `want` due jobs of the queue for one worker, and start each as arq's worker does,
-- all in one round trip: arq's rule for starting a job (due, not running elsewhere) applied to
-- the head of the queue, then what arq's run_job reads and counts before it runs a job (the
-- payload, one more try, the abort mark taken off). arq instead reads the first 100 ids, claims
-- them one by one (WATCH, EXISTS, ZSCORE, MULTI/EXEC each), then starts each in a round trip of
-- its own; and workers that read the same head collide on the same ids.
-- KEYS: queue, abort set
-- ARGV: now_ms (the worker's clock, as arq compares it), in_progress_ms, want,
--       in_progress_prefix, scan_max (ids looked at, at most), job_prefix
-- Returns {job_id, until_ms, payload (nil if gone), try, aborted (1 or 0), job_id, ...}.
-- A claimed job stays in the queue, as arq keeps it, but its score moves to the end of its
-- in-progress mark (until_ms): the scan then only meets due jobs, never the fleet's
-- running ones, and the job of a worker that died is due again when its mark expires.
-- The try (how often the job was claimed without being closed or handed back: more than 1
-- means a worker died or hung running it) is kept in that score's sixteenths: a job queued
-- anew (promoted, handed back, deferred) has a whole score, and each claim adds one (at most
-- MAX_TRIES). So arq's retry key is neither kept nor read.
local now, want, scan_max = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5])
local until_ms = tonumber(now) + tonumber(ARGV[2])
local MAX_TRIES = 15
-- abort marks are rare (a cancelled crawl): looked for per job only when there are any
local aborts = redis.call('EXISTS', KEYS[2]) == 1
local claimed, taken, offset, looked = {}, 0, 0, 0
-- claimed jobs leave the due range, so the next batch starts past the skipped ones only
while taken < want and looked < scan_max do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', offset,
                            100)
  if #batch == 0 then
    break
  end
  looked = looked + #batch / 2
  for i = 1, #batch, 2 do
    local id = batch[i]
    if not redis.call('SET', ARGV[4] .. id, '1', 'PX', ARGV[2], 'NX') then
      offset = offset + 1  -- its worker is handing it back
    else
      local score = tonumber(batch[i + 1])
      local try = math.min(math.floor((score - math.floor(score)) * 16 + 0.5) + 1, MAX_TRIES)
      local claimed_score = until_ms + try / 16
      redis.call('ZADD', KEYS[1], 'XX', claimed_score, id)
      local n = #claimed
      claimed[n + 1] = id
      claimed[n + 2] = until_ms  -- with the try: until_ms + try / 16
      claimed[n + 3] = redis.call('GET', ARGV[6] .. id)  -- false (a nil reply) if gone
      claimed[n + 4] = try
      claimed[n + 5] = aborts and redis.call('ZREM', KEYS[2], id) or 0
      taken = taken + 1
      if taken == want then
        break
      end
    end
  end
end
return claimed
