-- Decide whether a job that a worker has just claimed should run, and count its start.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), job_id, url (the page's, or the origin of a robots.txt job),
--       fingerprint ('' for a robots.txt job), depth, delay_ms (the host's, as promoted)
-- Returns {verdict, wait_ms}; verdict is
--   'run'     fetch it
--   'paused'  the crawl is paused: give the URL back to its backlog (page_done 'requeue')
--   'stale'   a shorter path to the page was found since it was admitted: close it unfetched
--   'stopped' the crawl is cancelled or gone: close it unfetched
--   'early'   the host's delay since its last request start has not passed (the previous job
--             was claimed late): it is queued again wait_ms later
-- A job closed already (a re-run) is not looked for: claim.lua found its payload a moment
-- ago, and page_done.lua closes a job once however often it runs.
local a = F.arg
local id, url, fp, depth, delay = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]),
  tonumber(ARGV[a + 4])
local c = string.match(id, '^[^:]+')
local cfg = crawl_cfg(c)
if not live(cfg) then
  return {'stopped', 0}
end
if cfg.state == 'paused' then
  return {'paused', 0}
end
if fp ~= '' then
  local best = seen_get(crawl_key(c, 'seen:'), fp)
  if best and best < depth then
    return {'stale', 0}
  end
end
if delay > 0 then
  local state = host_key(host_of(origin_of(url)), 'state')
  local last = tonumber(redis.call('HGET', state, 'last') or '0')
  -- a tenth of the delay (20 ms at most) of slack: a job claimed a few ms late must not make
  -- the next one, claimed on time, go round the queue again
  if F.now < last + delay - math.min(delay / 10, 20) then
    redis.call('ZADD', F.queue, last + delay, id)
    redis.call('DEL', F.in_progress_prefix .. id)
    return {'early', last + delay - F.now}
  end
  redis.call('HSET', state, 'last', F.now)
end
return {'run', 0}
