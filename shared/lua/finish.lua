-- Mark a crawl done if it is running (or paused) and has no pending job, and drop what only a
-- running crawl needs: its seen URLs, sitemap lastmods, robots.txt rules, origins and
-- sitemaps. Its hosts are left to the caller, which fills each (dropping the crawl's state
-- there) before it deletes their set.
-- Its meta, counters, reasons and busiest hosts stay, for `status`; the meta says where the
-- manifest is, as the workers see their data directory (the seeder's may be elsewhere).
-- A crawl --since another is given its count of unreached pages (``workers/unreached.py``) in
-- the same call, so that it is there once the crawl is done; a cancelled crawl's (or a done
-- crawl's, its finalize job run again) is set too, a forgotten one's not made again.
-- KEYS: meta, stats, origins, sitemaps
-- ARGV: finished_at, seen prefix, robots prefix, manifest path, lastmod prefix, unreached
--       ('' for a crawl that is not --since another)
-- Returns 1 if the crawl is now done, 0 if it still has pending jobs, -1 if it had ended.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'paused' then
  if state and ARGV[6] ~= '' then
    redis.call('HSET', KEYS[2], 'unreached', ARGV[6])
  end
  return -1
end
if tonumber(redis.call('HGET', KEYS[2], 'pending') or '0') ~= 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', ARGV[1], 'manifest', ARGV[4])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'unreached', ARGV[6])
end
local lastmods = redis.call('HGET', KEYS[1], 'lastmods') and ARGV[5]
drop_crawl_state(ARGV[2], KEYS[3], ARGV[3], lastmods)
redis.call('DEL', KEYS[3], KEYS[4])
return 1
