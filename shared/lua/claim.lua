-- Claim one queued arq job for this worker: arq's own rule for starting a job, in one round
-- trip instead of arq's four (WATCH, EXISTS, ZSCORE, MULTI/PSETEX/EXEC).
-- KEYS: in_progress (arq:in-progress:<job id>), queue
-- ARGV: job_id, now_ms (the worker's clock, as arq compares it), in_progress_ms
-- Returns the job's queue score (its enqueue or defer time, ms) when claimed, else false:
-- the job is running elsewhere, already finished, or deferred to later.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return false
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
return score
