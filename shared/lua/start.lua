-- Decide whether a page job that a worker has just taken should fetch, and count the start.
-- KEYS: meta, pending, seen, tries
-- ARGV: job_id, fingerprint, depth
-- Returns {verdict, tries, retried}; verdict is
--   'run'     fetch it; tries = how often it has been started without being closed,
--             retried = how many transient fetch failures of it were retried already
--   'done'    a re-run of a job that was already closed: do nothing
--   'paused'  the crawl is paused: hand the job back for later
--   'stale'   a shorter path to the page was found since this job was queued: close it unfetched
--   'stopped' the crawl is cancelled or gone: close it unfetched
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'paused' then
  return {'stopped', 0, 0}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return {'done', 0, 0}
end
if state == 'paused' then
  return {'paused', 0, 0}
end
local score = redis.call('ZSCORE', KEYS[3], ARGV[2])
if score and math.floor(tonumber(score)) < tonumber(ARGV[3]) then
  return {'stale', 0, 0}
end
local retried = tonumber(redis.call('HGET', KEYS[4], ARGV[1] .. '#fetch') or '0')
return {'run', redis.call('HINCRBY', KEYS[4], ARGV[1], 1), retried}
