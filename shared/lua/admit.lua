-- Included at the top of the scripts that queue pages (seed.lua, page_done.lua), after seen.lua.
--
-- admit(k, fp, depth, job_id, payload, opts): make `depth` the shortest known depth of the URL
-- with fingerprint `fp` and, when that is new or better than before, queue its arq job.
-- Returns 1 if a job was queued, else 0.
--   k    = {seen=, stats=, queue=}: the crawl's seen prefix and stats, and the sorted set the
--          job goes to (arq's queue, or the crawl's parked set while it is paused)
--   opts = {now=, max_pages=, job_prefix=}
-- An improved depth keeps the "fetched" mark, so the page is counted once however often it is
-- fetched. The stats field `seen` counts the URLs seen (it caps them at max_pages); `pending`
-- counts the jobs queued, parked or running: a job is pending while its arq job key exists.
-- Job payloads get no expiry: a queued job lives as long as its crawl (cancel deletes them).
local function admit(k, fp, depth, job_id, payload, opts)
  local best, fetched = seen_get(k.seen, fp)
  if best then
    if depth >= best then
      return 0
    end
  else
    if opts.max_pages > 0 and tonumber(redis.call('HGET', k.stats, 'seen') or '0') >= opts.max_pages then
      return 0
    end
    redis.call('HINCRBY', k.stats, 'seen', 1)
  end
  seen_set(k.seen, fp, depth, fetched)
  redis.call('SET', opts.job_prefix .. job_id, payload)
  redis.call('ZADD', k.queue, opts.now, job_id)
  redis.call('HINCRBY', k.stats, 'pending', 1)
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
