-- Included at the top of the scripts that take a host's request slot (host_acquire.lua,
-- start.lua). The slots and the delay are shared by every worker of the fleet, so per-host
-- limits hold fleet-wide. Time is Redis's own clock, the same for all.
--
-- take_slot(slots, next_key, token, lease_ms, limit, delay_ms): take one of `limit` request
-- slots of a host, at least `delay_ms` after the previous request to it started.
--   slots    sorted set token -> lease end (ms): requests in flight
--   next_key earliest next start (ms)
-- Returns 0 when the slot is taken, -2 when all slots are busy (ask again once one is given
-- back: workers/politeness.py), else how many ms to wait for the host's delay.
local function take_slot(slots, next_key, token, lease_ms, limit, delay_ms)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- leases of workers that died without releasing them
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  if redis.call('ZCARD', slots) >= limit then
    return -2
  end
  local next_start = tonumber(redis.call('GET', next_key) or '0')
  if next_start > now then
    return next_start - now
  end
  redis.call('ZADD', slots, now + lease_ms, token)
  redis.call('PEXPIRE', slots, lease_ms)
  if delay_ms > 0 then
    redis.call('SET', next_key, now + delay_ms, 'PX', delay_ms)
  end
  return 0
end
