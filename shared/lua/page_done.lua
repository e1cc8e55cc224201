-- Close one page job: count it, queue its new or improved links, and, when it was the crawl's
-- last pending job, queue the job that finalizes the crawl; give back the request slot the job
-- held on its host. All in one round trip.
-- A job is pending while its arq job key exists (admit.lua writes it): closing deletes it, so
-- a job run again after its close (its worker died before arq's own clean-up) finds it gone.
-- It also does arq's clean-up of a finished job (in-progress and retry keys, queue and abort
-- entries), so that the worker can skip that round trip (workers/arq_worker.py).
-- KEYS: meta, seen prefix (see seen.lua), job key (arq:job:<id>), stats, queue, parked, tries,
--       reasons, slots (of the page's host), arq in-progress key, arq retry key, arq abort set
-- ARGV: job_id, fingerprint, depth, outcome ('fetched' | 'failed' | 'skipped'), bytes, now_ms,
--       max_pages, job_prefix, finalize_job_id, finalize_payload, reason ('' for none),
--       slot token ('' for none), then (fingerprint, job_id, payload) per link, at depth + 1
-- Returns {status, queued}: status 1 = closed, -1 = this job was already closed (a re-run).
if ARGV[12] ~= '' then
  redis.call('ZREM', KEYS[9], ARGV[12])
end
if redis.call('DEL', KEYS[3]) == 0 then
  return {-1, 0}
end
redis.call('DEL', KEYS[10], KEYS[11])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[12], ARGV[1])
redis.call('HDEL', KEYS[7], ARGV[1], ARGV[1] .. '#fetch')
local depth = tonumber(ARGV[3])
local outcome = ARGV[4]
local stale = false
if outcome ~= 'skipped' then
  local best, fetched = seen_get(KEYS[2], ARGV[2])
  if best then
    stale = best < depth
    if not fetched then
      seen_set(KEYS[2], ARGV[2], best, true)
      redis.call('HINCRBY', KEYS[4], outcome, 1)
      redis.call('HINCRBY', KEYS[4], 'bytes', tonumber(ARGV[5]))
      if ARGV[11] ~= '' then
        redis.call('HINCRBY', KEYS[8], ARGV[11], 1)
      end
    end
  end
end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'paused' then
  -- a cancelled crawl's pending count was zeroed when it was cancelled
  return {1, 0}
end
redis.call('HINCRBY', KEYS[4], 'pending', -1)
local queued = 0
-- a stale job's links are queued by the job that found the page at a shorter depth
if not stale then
  local k = {seen = KEYS[2], stats = KEYS[4], queue = target_queue(state, KEYS[5], KEYS[6])}
  local opts = {now = tonumber(ARGV[6]), max_pages = tonumber(ARGV[7]), job_prefix = ARGV[8]}
  for i = 13, #ARGV, 3 do
    queued = queued + admit(k, ARGV[i], depth + 1, ARGV[i + 1], ARGV[i + 2], opts)
  end
end
if tonumber(redis.call('HGET', KEYS[4], 'pending')) == 0 then
  redis.call('SET', ARGV[8] .. ARGV[9], ARGV[10])
  redis.call('ZADD', KEYS[5], tonumber(ARGV[6]), ARGV[9])
end
return {1, queued}
