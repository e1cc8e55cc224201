-- Included at the top of the scripts that queue pages (seed.lua, page_done.lua).
--
-- admit(k, fp, depth, job_id, payload, opts): make `depth` the shortest known depth of the URL
-- with fingerprint `fp` and, when that is new or better than before, queue its arq job.
-- Returns 1 if a job was queued, else 0.
--   k    = {seen=, pending=, stats=, queue=} key names of the crawl and of the sorted set the
--          job goes to (arq's queue, or the crawl's parked set while it is paused)
--   opts = {now=, max_pages=, job_prefix=}
-- The seen score is the depth, plus 0.5 once the page has been fetched: an improved depth keeps
-- that half so the page is counted once however often it is fetched.
-- Job payloads get no expiry: a queued job lives as long as its crawl (cancel deletes them).
local function admit(k, fp, depth, job_id, payload, opts)
  local score = redis.call('ZSCORE', k.seen, fp)
  if score then
    local value = tonumber(score)
    local best = math.floor(value)
    if depth >= best then
      return 0
    end
    redis.call('ZADD', k.seen, depth + (value - best), fp)
  else
    if opts.max_pages > 0 and redis.call('ZCARD', k.seen) >= opts.max_pages then
      return 0
    end
    redis.call('ZADD', k.seen, depth, fp)
  end
  redis.call('SET', opts.job_prefix .. job_id, payload)
  redis.call('ZADD', k.queue, opts.now, job_id)
  redis.call('SADD', k.pending, job_id)
  redis.call('HINCRBY', k.stats, 'queued', 1)
  return 1
end

-- The sorted set new jobs of a crawl in `state` go to.
local function target_queue(state, queue, parked)
  if state == 'paused' then
    return parked
  end
  return queue
end
