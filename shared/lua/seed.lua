-- Create a crawl (or add seeds to a running or paused one) and admit its seeds at depth 0.
-- KEYS: (frontier.lua's head), crawls index
-- ARGV: (frontier.lua's head), crawl_id, spec_json, created_at, host_limit, host_delay_ms,
--       robots (1 or 0), max_pages (0: none), depth, max_pages_per_host (0: none), adaptive
--       (1 or 0: adaptive politeness, frontier.lua), sitemap_urls and sitemap_files (the caps
--       of a crawl that reads sitemaps), n, then n sitemap URLs (the /sitemap.xml of each
--       seed's origin, admitted after the seeds, their jobs to read the robots.txt Sitemap:
--       lines too), then (fingerprint, url) per seed
-- Returns {status, admitted}: status 1 = created, 0 = added to an existing crawl,
-- -1 = the crawl exists and has ended; or {-2, 0, its spec} when it lives with a spec other
-- than spec_json (seeds aside: a live crawl takes more seeds, never other options). Nothing
-- changes unless the status is 0 or 1. The spec is compared in this call, so of two seeders
-- racing with different specs one creates the crawl and the other is told of the conflict.
local function same(x, y)
  if type(x) ~= 'table' or type(y) ~= 'table' then
    return x == y
  end
  for k, v in pairs(x) do
    if not same(v, y[k]) then
      return false
    end
  end
  for k in pairs(y) do
    if x[k] == nil then
      return false
    end
  end
  return true
end

local a = F.arg
local c = ARGV[a]
local meta = crawl_key(c, 'meta')
local state = redis.call('HGET', meta, 'state')
if state and state ~= 'running' and state ~= 'paused' then
  return {-1, 0}
end
local created = 0
if state then
  local stored = redis.call('HGET', meta, 'spec') or ''
  local ok, old = pcall(cjson.decode, stored)
  local new = cjson.decode(ARGV[a + 1])
  if ok and type(old) == 'table' then
    old.seeds, new.seeds = nil, nil
  end
  if not (ok and same(old, new)) then
    return {-2, 0, stored}
  end
else
  redis.call('HSET', meta, 'spec', ARGV[a + 1], 'state', 'running', 'created_at', ARGV[a + 2],
             'host_limit', ARGV[a + 3], 'host_delay_ms', ARGV[a + 4], 'robots', ARGV[a + 5],
             'max_pages', ARGV[a + 6], 'depth', ARGV[a + 7], 'host_pages', ARGV[a + 8],
             'adaptive', ARGV[a + 9], 'sitemap_urls', ARGV[a + 10],
             'sitemap_files', ARGV[a + 11])
  redis.call('ZADD', KEYS[3], F.now, c)
  created = 1
end
local n_sitemaps = tonumber(ARGV[a + 12])
local seeds_from = a + 13 + n_sitemaps
local admitted = 0
for i = seeds_from, #ARGV, 2 do
  admitted = admitted + admit(c, ARGV[i], ARGV[i + 1], 0, 0, nil, nil)
end
for i = a + 13, seeds_from - 1 do
  admit_sitemap(c, ARGV[i], 0, 1, nil)
end
fill_touched()
flush_stats()
return {created, admitted}
