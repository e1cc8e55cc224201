-- Create a crawl (or add seeds to a running or paused one) and queue its seeds at depth 0.
-- KEYS: meta, crawls index, seen prefix (see seen.lua), stats, queue, parked
-- ARGV: crawl_id, spec_json, created_at, now_ms, max_pages, job_prefix,
--       then (fingerprint, job_id, payload) per seed
-- Returns {status, queued}: status 1 = created, 0 = added to an existing crawl,
-- -1 = the crawl exists and has ended (nothing changed).
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'running' and state ~= 'paused' then
  return {-1, 0}
end
local created = 0
if not state then
  state = 'running'
  redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'state', state, 'created_at', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  created = 1
end
local k = {seen = KEYS[3], stats = KEYS[4], queue = target_queue(state, KEYS[5], KEYS[6])}
local opts = {now = tonumber(ARGV[4]), max_pages = tonumber(ARGV[5]), job_prefix = ARGV[6]}
local queued = 0
for i = 7, #ARGV, 3 do
  queued = queued + admit(k, ARGV[i], 0, ARGV[i + 1], ARGV[i + 2], opts)
end
return {created, queued}
