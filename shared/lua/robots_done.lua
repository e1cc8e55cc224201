-- Close a robots.txt job: keep what it found for the crawl's workers, open the gate of its
-- host's backlog and promote its pages; or, after a transient failure, put it back at the
-- front of the backlog, not before not_before, with the gate kept shut.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), job_id, origin, outcome ('ok' or 'retry'), rules (the JSON the
--       workers read, for 'ok'), crawl_delay_ms, not_before (ms), ttl_s of the rules, retried
--       (transient failures before this one), took_ms and signal (what the fetch told of its
--       host, as page_done.lua's: a robots.txt that times out is a strike against the host
--       like a page that does, so a host that never answers it is given up; '' for no fetch)
-- Returns {status, earliest}: status 1 = closed, -1 = this job was already closed (a re-run);
-- earliest = F.earliest.
local a = F.arg
local id, origin, outcome, rules = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
local crawl_delay, not_before, ttl = tonumber(ARGV[a + 4]), ARGV[a + 5], ARGV[a + 6]
local retried = tonumber(ARGV[a + 7])
local took, signal = tonumber(ARGV[a + 8]), ARGV[a + 9]
local c = crawl_of(id)
local host = host_of(origin)
if not close_job(id, host, c) then
  fill_touched()
  return {-1, F.earliest}
end
local cfg = crawl_cfg(c)
observe(host, c, cfg, took, signal)
local state = host_key(host, 'state')
redis.call('HDEL', state, c .. ':robots')
if live(cfg) then
  if outcome == 'retry' then
    push(c, host, 'R ' .. (retried + 1) .. ' ' .. not_before .. ' ' .. origin, true)
  else
    redis.call('SET', crawl_key(c, 'robots:' .. origin), rules, 'EX', ttl)
    if crawl_delay > tonumber(redis.call('HGET', state, c .. ':delay') or '0') then
      redis.call('HSET', state, c .. ':delay', crawl_delay)
    end
    bump(c, 'pending', -1)
  end
end
fill_touched()
flush_stats()
return {1, F.earliest}
