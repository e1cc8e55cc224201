-- Cancel a crawl, or fail it (a worker that cannot store its pages): mark it cancelled (or
-- failed, keeping the reason) and zero its pending count. Its queued jobs (in arq's queue,
-- which all crawls share) are dropped afterwards, a batch at a time (sweep.lua), and its
-- backlogs with them (fill_hosts.lua); any job that a worker starts meanwhile sees the crawl
-- stopped and ends at once. Its seen URLs, sitemap lastmods, robots.txt rules, origins and
-- sitemaps are dropped here (nothing writes them once it has ended); its state on its hosts
-- once the sweep is done.
-- KEYS: meta, stats, origins, sitemaps
-- ARGV: finished_at, seen prefix, robots prefix, state ('cancelled' or 'failed'), reason,
--       lastmod prefix
-- Returns 0, -1 if there is no such crawl, -2 if it has ended.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'running' and state ~= 'paused' then
  return -2
end
redis.call('HSET', KEYS[2], 'pending', 0)
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'finished_at', ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'reason', ARGV[5])
end
local lastmods = redis.call('HGET', KEYS[1], 'lastmods') and ARGV[6]
drop_crawl_state(ARGV[2], KEYS[3], ARGV[3], lastmods)
redis.call('DEL', KEYS[3], KEYS[4])
return 0
