-- Claim up to `want` due jobs of the queue for one worker, start each as arq's worker does,
-- and decide whether it should run, all in one round trip: arq's rule for starting a job (due,
-- not running elsewhere) applied to the head of the queue, then what arq's run_job reads and
-- counts before it runs a job (the payload, one more try, the abort mark taken off), then the
-- frontier's verdict. arq instead reads the first 100 ids, claims them one by one (WATCH,
-- EXISTS, ZSCORE, MULTI/EXEC each), then starts each in a round trip of its own; and workers
-- that read the same head collide on the same ids.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head; now as the worker's clock, as arq compares it), in_progress_ms,
--       want, scan_max (ids looked at, at most)
-- Returns {head, aborts, job_id, until_ms, payload (false if gone), try, aborted (1 or 0),
-- verdict, lastmod, job_id, ...}. head is the queue's first score once the claim took fewer
-- than `want` (the worker then knows when to look again), '' otherwise or when the queue is
-- empty; aborts is 1 if arq's abort set still holds an id after the claim (a cancelled crawl's
-- running jobs: the worker looks for its own among them), else 0. A worker that claims often
-- so learns of aborts without asking on a beat of its own.
-- A claimed job stays in the queue, as arq keeps it, but its score moves to the end of its
-- in-progress mark (until_ms): the scan then only meets due jobs, never the fleet's
-- running ones, and the job of a worker that died is due again when its mark expires.
-- The try (how often the job was claimed without being closed or handed back: more than 1
-- means a worker died or hung running it) is kept in that score's sixteenths: a job queued
-- anew (promoted, handed back, deferred) has a whole score, and each claim adds one (at most
-- MAX_TRIES). So arq's retry key is neither kept nor read.
--
-- The verdict of a page job:
--   'run'     fetch it
--   'paused'  the crawl is paused: give the URL back to its backlog (page_done 'requeue')
--   'stale'   a shorter path to the page was found since it was admitted: close it unfetched
--   'stopped' the crawl is cancelled or gone: close it unfetched
-- and of a robots.txt or sitemap job 'stopped' or 'run' (a paused crawl's are fetched all the
-- same: one request, like a page in flight); any other job runs.
-- A page job to run of a crawl that keeps sitemap lastmods (a crawl --since another) is given
-- its URL's (Unix seconds, sitemap_done.lua), '' if none: a worker need not request a page
-- its sitemap says is no newer than the earlier crawl's copy. Other crawls' jobs cost no
-- lookup for it.
-- A page job of a host with a delay between request starts promotes the host's next job, to
-- start that delay after this one (see `ahead` in frontier.lua).
-- A job closed already (a re-run) is not looked for: page_done.lua closes a job once however
-- often it runs.
local a = F.arg
local in_progress_ms, want, scan_max = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
local until_ms = F.now + tonumber(in_progress_ms)
local MAX_TRIES = 15

-- The verdict on a live crawl's page job. A job of a host with a delay between request
-- starts that is to run says when the host's next request may start (frontier.lua's `ahead`).
local function page_verdict(c, cfg, fp, depth, payload)
  if cfg.state == 'paused' then
    return 'paused'
  end
  local best = seen_get(crawl_key(c, 'seen:'), fp)
  if best and best < depth then
    return 'stale'
  end
  local lastmod = ''
  if cfg.lastmods then
    lastmod = lastmod_get(crawl_key(c, 'lastmod:'), fp) or ''
  end
  local ok, job = pcall(cmsgpack.unpack, payload)
  local args = ok and type(job) == 'table' and job.a
  local delay = args and tonumber(args[6]) or 0
  if delay > 0 then
    return 'run', host_of(origin_of(args[1])), F.now + delay, lastmod
  end
  return 'run', nil, nil, lastmod
end

local function verdict(id, payload)
  local c, fp, depth = string.match(id, '^([^:]+):(%x+):(%d+)$')
  if c then
    local cfg = crawl_cfg(c)
    if not live(cfg) then
      return 'stopped'
    end
    return page_verdict(c, cfg, fp, tonumber(depth), payload)
  end
  c = string.match(id, '^([^:]+):robots:') or string.match(id, '^([^:]+):sitemap:')
  if c and not live(crawl_cfg(c)) then
    return 'stopped'
  end
  return 'run'
end

-- abort marks are rare (a cancelled crawl): looked for per job only when there are any
local aborts = redis.call('EXISTS', F.abort) == 1
local claimed, taken, offset, looked = {'', 0}, 0, 0, 0
-- claimed jobs leave the due range, so the next batch starts past the skipped ones only
while taken < want and looked < scan_max do
  local batch = redis.call('ZRANGEBYSCORE', F.queue, '-inf', F.now, 'WITHSCORES', 'LIMIT',
                           offset, 100)
  if #batch == 0 then
    break
  end
  looked = looked + #batch / 2
  for i = 1, #batch, 2 do
    local id = batch[i]
    local in_progress = F.in_progress_prefix .. id
    if not redis.call('SET', in_progress, '1', 'PX', in_progress_ms, 'NX') then
      offset = offset + 1  -- its worker is handing it back
    else
      local payload = redis.call('GET', F.job_prefix .. id)  -- false (a nil reply) if gone
      local aborted = aborts and redis.call('ZREM', F.abort, id) or 0
      local say, host, next_start, lastmod = 'run', nil, nil, nil
      if payload and aborted == 0 then
        say, host, next_start, lastmod = verdict(id, payload)
      end
      if host then
        done_waiting[host] = {id = id, next = next_start}
        touch(host, crawl_of(id))
      end
      local score = tonumber(batch[i + 1])
      local try = math.min(math.floor((score - math.floor(score)) * 16 + 0.5) + 1, MAX_TRIES)
      redis.call('ZADD', F.queue, 'XX', until_ms + try / 16, id)
      local n = #claimed
      claimed[n + 1] = id
      claimed[n + 2] = until_ms  -- with the try: until_ms + try / 16
      claimed[n + 3] = payload
      claimed[n + 4] = try
      claimed[n + 5] = aborted
      claimed[n + 6] = say
      claimed[n + 7] = lastmod or ''
      taken = taken + 1
      if taken == want then
        break
      end
    end
  end
end
-- the delayed hosts whose job ahead has started promote their next one
fill_touched()
if taken < want then
  local head = redis.call('ZRANGE', F.queue, 0, 0, 'WITHSCORES')
  if head[2] then
    claimed[1] = head[2]
  end
end
-- the claims above may have taken the last marks off
if aborts then
  claimed[2] = redis.call('EXISTS', F.abort)
end
return claimed
