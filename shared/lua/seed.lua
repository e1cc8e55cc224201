-- Create a crawl (or add seeds to a running one) and queue its seeds at depth 0.
-- KEYS: meta, crawls index, seen, pending, stats, queue
-- ARGV: crawl_id, spec_json, created_at, now_ms, expiry_ms, max_pages, job_prefix,
--       then (fingerprint, job_id, payload) per seed
-- Returns {status, queued}: status 1 = created, 0 = added to a running crawl,
-- -1 = the crawl exists and is not running (nothing changed).
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'running' then
  return {-1, 0}
end
local created = 0
if not state then
  redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'state', 'running', 'created_at', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  created = 1
end
local k = {seen = KEYS[3], pending = KEYS[4], stats = KEYS[5], queue = KEYS[6]}
local opts = {now = tonumber(ARGV[4]), expiry_ms = tonumber(ARGV[5]),
              max_pages = tonumber(ARGV[6]), job_prefix = ARGV[7]}
local queued = 0
for i = 8, #ARGV, 3 do
  queued = queued + admit(k, ARGV[i], 0, ARGV[i + 1], ARGV[i + 2], opts)
end
return {created, queued}
