-- Close a sitemap job: count the sitemap as read or skipped, with its reasons; admit the page
-- URLs it listed at depth 0 with admit (as links and seeds are admitted: dedupe, --max-pages,
-- robots.txt first) while the crawl's cap of sitemap URLs allows, and the sitemaps it points to
-- (an index's, a redirect's target, a robots.txt's Sitemap: lines) with admit_sitemap; give the
-- host slot back and promote the host's next entries. All in one round trip, as page_done.lua.
-- A transient failure instead puts the sitemap at the back of its host's backlog, not before
-- not_before.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), job_id, url, level, retried, discover (1 or 0), outcome, reasons
--       (one string, each reason on a line of its own; '' for none), not_before (ms), hold_ms,
--       took_ms, signal (as page_done.lua's), n, then n origins the worker has not sent
--       before, m, then m (level, url) per sitemap, then (fingerprint, url, lastmod) per page
--       URL, lastmod the latest time its <lastmod> may mean (Unix seconds, rounded up), '' for
--       none (the worker sends one only for a crawl --since another)
-- outcome is 'read' (counted in `sitemaps`), 'skipped' (not read: `sitemaps_skipped`),
-- 'redirected' (its target is a sitemap of its own: not counted) or 'retry'.
-- A page URL's lastmod is kept (cf:<crawl>:lastmod:, seen.lua) once it is at depth 0, admitted
-- here or a seed: the latest one the crawl's sitemaps gave it, for its page job's claim
-- (claim.lua), which a worker compares with the earlier crawl's copy (past the crawl's cap of
-- sitemap URLs too, for a URL at depth 0 already). So the crawl keeps one at most per URL its
-- sitemaps took (within its cap) and per seed.
-- Returns {status, admitted, considered, earliest} as page_done.lua: admitted counts the page
-- URLs admitted (new to the crawl or nearer than before).
local a = F.arg
local id, url, level, retried = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
local discover, outcome, reasons = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
local not_before, hold = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
local took, signal = tonumber(ARGV[a + 9]), ARGV[a + 10]
local n_origins = tonumber(ARGV[a + 11])
local new_origins = {}
for i = a + 12, a + 11 + n_origins do
  new_origins[ARGV[i]] = true
end
local n_sitemaps = tonumber(ARGV[a + 12 + n_origins])
local sitemaps_from = a + 13 + n_origins
local pages_from = sitemaps_from + 2 * n_sitemaps

-- Keep the lastmod of a page URL the crawl has at depth 0 (`took_it`: admitted at depth 0 just
-- now, so none is kept yet), unless a later one is kept already.
local function keep_lastmod(c, cfg, seen, lastmods, fp, seconds, took_it)
  if took_it == 0 then
    if seen_get(seen, fp) ~= 0 then
      return
    end
    local kept = lastmod_get(lastmods, fp)
    if kept and kept >= seconds then
      return
    end
  end
  lastmod_set(lastmods, fp, seconds)
  if not cfg.lastmods then
    redis.call('HSET', crawl_key(c, 'meta'), 'lastmods', 1)
    cfg.lastmods = true
  end
end

local c, origin, host, cfg = close_fetch(id, url, took, signal, hold)
if not c then return {-1, 0, 0, F.earliest} end
local admitted, considered = 0, 0
if not live(cfg) then
  -- nothing of a cancelled crawl is counted or admitted (cancel.lua zeroed its pending count)
elseif outcome == 'retry' then
  push(c, host, 'S ' .. (retried + 1) .. ' ' .. not_before .. ' ' .. level .. ' ' .. discover
       .. ' ' .. url, false)
else
  considered = 1
  bump(c, 'pending', -1)
  if outcome == 'read' then
    bump(c, 'sitemaps', 1)
  elseif outcome == 'skipped' then
    bump(c, 'sitemaps_skipped', 1)
  end
  local counted = crawl_key(c, 'reasons')
  for reason in string.gmatch(reasons, '[^\n]+') do
    redis.call('HINCRBY', counted, reason, 1)
  end
  for i = sitemaps_from, pages_from - 1, 2 do
    admit_sitemap(c, ARGV[i + 1], tonumber(ARGV[i]), 0, new_origins)
  end
  -- the parent as a job carries it: the sitemap's path, when on the URL's origin
  local path = string.sub(url, #origin + 1)
  local seen = crawl_key(c, 'seen:')
  local lastmods = crawl_key(c, 'lastmod:')
  local over = 0
  for i = pages_from, #ARGV, 3 do
    local fp, link, lastmod = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    if stat_table(c).sitemap_urls >= cfg.sitemap_urls then
      -- past the cap, a URL the crawl has not met is one it does not fetch
      if not seen_get(seen, fp) then
        over = over + 1
      elseif lastmod ~= '' then
        keep_lastmod(c, cfg, seen, lastmods, fp, tonumber(lastmod), 0)
      end
    else
      local parent = url
      if string.sub(link, 1, #origin + 1) == origin .. '/' then
        parent = path
      end
      local took_it = admit(c, fp, link, 0, 0, parent, new_origins)
      admitted = admitted + took_it
      bump(c, 'sitemap_urls', took_it)
      if lastmod ~= '' then
        keep_lastmod(c, cfg, seen, lastmods, fp, tonumber(lastmod), took_it)
      end
    end
  end
  if over > 0 then
    bump(c, 'capped', over)
    -- a reason of shared/failures.py's (FailureKind.SITEMAP_URL_CAP)
    redis.call('HINCRBY', counted, 'sitemap: crawl cap of sitemap URLs reached', 1)
  end
end
fill_touched()
flush_stats()
return {1, admitted, considered, F.earliest}
