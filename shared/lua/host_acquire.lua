-- Take a request slot for a host. The slots and the delay are shared by every worker of the
-- fleet, so per-host limits hold fleet-wide. Time is Redis's own clock, the same for all.
-- KEYS: slots (sorted set token -> lease end), next (earliest next start, ms)
-- ARGV: token, lease_ms, limit, delay_ms
-- Returns 0 when the slot is taken, else how many ms to wait before asking again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- leases of workers that died without releasing them
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  -- all slots busy: a request may end any moment, ask again soon
  return 50
end
local next_start = tonumber(redis.call('GET', KEYS[2]) or '0')
if next_start > now then
  return next_start - now
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
local delay = tonumber(ARGV[4])
if delay > 0 then
  redis.call('SET', KEYS[2], now + delay, 'PX', delay)
end
return 0
