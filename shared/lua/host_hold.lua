-- Hold every request to a host for a while (a 429 or 503 with Retry-After, or Crawl-delay),
-- never shortening a hold already in place.
-- KEYS: next (earliest next start, ms)
-- ARGV: hold_ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[1])
if now + hold > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], now + hold, 'PX', hold)
end
return 0
