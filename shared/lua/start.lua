-- Decide whether a job that a worker has just claimed should run, and count its start.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), job_id, url (the page's, or the origin of a robots.txt job),
--       fingerprint ('' for a robots.txt job), depth
-- Returns {verdict, tries, retried, wait_ms}; verdict is
--   'run'     fetch it; tries = how often it has been started without being closed,
--             retried = how many transient fetch failures of it were retried already
--   'done'    a re-run of a job that was already closed: do nothing
--   'paused'  the crawl is paused: give the URL back to its backlog (page_done 'requeue')
--   'stale'   a shorter path to the page was found since this job was queued: close it unfetched
--   'stopped' the crawl is cancelled or gone: close it unfetched
--   'early'   the host's delay since its last request start has not passed (the job was
--             claimed late, after the next one): it is queued again wait_ms later
local a = F.arg
local id, url, fp, depth = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
local c = string.match(id, '^[^:]+')
local cfg = crawl_cfg(c)
if not live(cfg) then
  return {'stopped', 0, 0, 0}
end
if redis.call('EXISTS', F.job_prefix .. id) == 0 then
  return {'done', 0, 0, 0}
end
if cfg.state == 'paused' then
  return {'paused', 0, 0, 0}
end
local tries_key = crawl_key(c, 'tries')
if fp ~= '' then
  local best = seen_get(crawl_key(c, 'seen:'), fp)
  if best and best < depth then
    return {'stale', 0, 0, 0}
  end
end
local host = host_of(origin_of(url))
local delay = math.max(cfg.delay,
                       tonumber(redis.call('HGET', crawl_host_key(host, c, 'gate'), 'delay') or '0'))
if delay > 0 then
  local pace = host_key(host, 'pace')
  local last = tonumber(redis.call('HGET', pace, 'last') or '0')
  if F.now < last + delay then
    redis.call('ZADD', F.queue, last + delay, id)
    redis.call('DEL', F.in_progress_prefix .. id)
    return {'early', 0, 0, last + delay - F.now}
  end
  redis.call('HSET', pace, 'last', F.now)
end
-- the slot's lease runs from the start: a job whose worker dies keeps it until it runs again
redis.call('ZADD', host_key(host, 'slots'), 'XX', F.now + F.lease, id)
local retried = tonumber(redis.call('HGET', tries_key, id .. '#fetch') or '0')
local tries = redis.call('HINCRBY', tries_key, id, 1)
return {'run', tries, retried, 0}
