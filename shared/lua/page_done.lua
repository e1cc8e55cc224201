-- Close one page job: count it, admit its new or improved links (and the target of a redirect),
-- give back its host slot and promote the host's next URLs, do arq's clean-up of the job, and,
-- when it was the crawl's last pending work, queue the job that finalizes the crawl. All in one
-- round trip.
-- A job is pending while its arq job key exists: closing deletes it, so a job run again after
-- its close (its worker died before arq's own clean-up) finds it gone and changes nothing.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), job_id, url, fingerprint, depth, hops, retried, parent (as in
--       the job), outcome, bytes, reason ('' for none), change (of a crawl --since another:
--       'new', 'changed', 'unchanged', 'gone'; '' for none), not_before (ms), hold_ms, took_ms (how
--       long the fetch took), signal ('answer': a response came; 'timeout': none in time;
--       'unsent': no request was sent, and a host with a delay gets the turn back (give_back);
--       '' for another failure), redirect url ('' for none), redirect fingerprint,
--       n, then n origins the worker has not sent before
--       (of the links and the redirect; their robots.txt may be new to the crawl), then
--       (fingerprint, url) per link, at depth + 1
-- change is counted once per page, as outcome is.
-- outcome is 'fetched', 'failed', 'excluded' (by robots.txt: counted apart, no failure) or
-- 'skipped' (stale or stopped: closed, not counted), 'retry' (a transient failure: the URL
-- goes to the back of its host's backlog, not before not_before) or 'requeue' (not run, the
-- crawl is paused: back to the front). hold_ms > 0 holds every request to the host that long
-- (a Retry-After). took_ms and signal are what the host's adaptive politeness learns from
-- (frontier.lua's adapt), for a crawl that has it.
-- Returns {status, admitted, considered, earliest}: status 1 = closed, -1 = this job was
-- already closed (a re-run); considered = 1 if its links were weighed (0: a re-run, a stale
-- page, an ended crawl), so the worker may remember them as seen; earliest = F.earliest.
local a = F.arg
local id, url, fp, depth, hops, retried, parent = ARGV[a], ARGV[a + 1], ARGV[a + 2],
  tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6]
local outcome, nbytes, reason = ARGV[a + 7], tonumber(ARGV[a + 8]), ARGV[a + 9]
local change = ARGV[a + 10]
local not_before, hold = tonumber(ARGV[a + 11]), tonumber(ARGV[a + 12])
local took, signal = tonumber(ARGV[a + 13]), ARGV[a + 14]
local redirect_url, redirect_fp = ARGV[a + 15], ARGV[a + 16]
local n_origins = tonumber(ARGV[a + 17])
local new_origins = {}
for i = a + 18, a + 17 + n_origins do
  new_origins[ARGV[i]] = true
end
local links_from = a + 18 + n_origins

-- The crawl's busiest hosts: pages done per host in a sorted set of BUSIEST_HOSTS hosts at
-- most (shared/keys.py names the same bound), one ZADD per page of a host it holds. A host it
-- does not hold, once full, takes the place of the least busy one with that one's count plus
-- one (Space-Saving, Metwally et al. 2005): every host with more than 1/BUSIEST_HOSTS of the
-- pages is held, its count too high by at most the count it took over; 'hosts_dropped' counts
-- the take-overs (none: every count is exact).
local BUSIEST_HOSTS = 32
local function count_host(c, h)
  local busiest = crawl_key(c, 'busiest')
  if redis.call('ZADD', busiest, 'XX', 'INCR', 1, h) then
    return
  end
  if redis.call('ZCARD', busiest) < BUSIEST_HOSTS then
    redis.call('ZADD', busiest, 1, h)
    return
  end
  local least = redis.call('ZPOPMIN', busiest)
  redis.call('ZADD', busiest, tonumber(least[2]) + 1, h)
  bump(c, 'hosts_dropped', 1)
end

local c, origin, host, cfg = close_fetch(id, url, took, signal, hold)
if not c then return {-1, 0, 0, F.earliest} end
local admitted, considered = 0, 0
if not live(cfg) then
  -- a cancelled crawl's pending count was zeroed when it was cancelled
elseif outcome == 'requeue' or outcome == 'retry' then
  if outcome == 'retry' then
    retried = retried + 1
  end
  push(c, host, page_entry(depth, hops, retried, not_before, url, parent), outcome == 'requeue')
else
  local stale = false
  if outcome ~= 'skipped' then
    local seen = crawl_key(c, 'seen:')
    local best, fetched = seen_get(seen, fp)
    if best then
      stale = best < depth
      if not fetched then
        seen_set(seen, fp, best, true)
        bump(c, outcome, 1)
        bump(c, 'bytes', nbytes)
        count_host(c, host)
        if reason ~= '' then
          redis.call('HINCRBY', crawl_key(c, 'reasons'), reason, 1)
        end
        if change ~= '' then
          -- apart from STAT_FIELDS: a crawl that is no recrawl never reads or writes them
          redis.call('HINCRBY', crawl_key(c, 'stats'), change, 1)
        end
      end
    end
  end
  bump(c, 'pending', -1)
  -- a stale job's links are admitted by the job that found the page at a shorter depth
  if not stale then
    considered = 1
    -- the parent as a job carries it: its path, when on the link's origin
    local path = string.sub(url, #origin + 1)
    local function parent_of(link)
      if string.sub(link, 1, #origin + 1) == origin .. '/' then
        return path
      end
      return url
    end
    if redirect_url ~= '' then
      admitted = admitted + admit(c, redirect_fp, redirect_url, depth, hops + 1,
                                  parent_of(redirect_url), new_origins)
    end
    if depth < cfg.depth then
      for i = links_from, #ARGV, 2 do
        local link = ARGV[i + 1]
        admitted = admitted + admit(c, ARGV[i], link, depth + 1, 0, parent_of(link), new_origins)
      end
    end
  end
end
fill_touched()
flush_stats()
return {1, admitted, considered, F.earliest}
