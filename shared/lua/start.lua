-- Decide whether a page job that a worker has just taken should fetch, count the start, and,
-- when the worker already knows the host's limits, take a request slot in the same round trip.
-- KEYS: meta, job key (arq:job:<id>), seen prefix (see seen.lua), tries[, slots, next (the page's host, see slot.lua)]
-- ARGV: job_id, fingerprint, depth[, token, lease_ms, limit, delay_ms]
-- Returns {verdict, tries, retried, slot}; verdict is
--   'run'     fetch it; tries = how often it has been started without being closed,
--             retried = how many transient fetch failures of it were retried already,
--             slot = -1 if not asked, else take_slot's answer (0 taken, -2 busy, ms to wait)
--   'done'    a re-run of a job that was already closed: do nothing
--   'paused'  the crawl is paused: hand the job back for later
--   'stale'   a shorter path to the page was found since this job was queued: close it unfetched
--   'stopped' the crawl is cancelled or gone: close it unfetched
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'paused' then
  return {'stopped', 0, 0, -1}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'done', 0, 0, -1}
end
if state == 'paused' then
  return {'paused', 0, 0, -1}
end
local best = seen_get(KEYS[3], ARGV[2])
if best and best < tonumber(ARGV[3]) then
  return {'stale', 0, 0, -1}
end
local retried = tonumber(redis.call('HGET', KEYS[4], ARGV[1] .. '#fetch') or '0')
local tries = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
local slot = -1
if #KEYS == 6 then
  slot = take_slot(KEYS[5], KEYS[6], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]),
                   tonumber(ARGV[7]))
end
return {'run', tries, retried, slot}
