-- Forget an ended crawl: delete its record (meta, counters, reasons, busiest hosts) and take it
-- off the index, so `status` no longer lists it. A running or paused crawl is refused: cancel
-- it first. What else a crawl had in Redis went when it ended (finish.lua, cancel.lua); its
-- hosts' set too, for a crawl whose ending was cut short before it was filled.
-- KEYS: meta, stats, reasons, busiest, hosts, crawls index
-- ARGV: crawl_id
-- Returns 0, -1 if there is no such crawl, -2 if it has not ended.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state == 'running' or state == 'paused' then
  return -2
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[1])
return 0
