-- Take a request slot for a host (see slot.lua).
-- KEYS: slots, next
-- ARGV: token, lease_ms, limit, delay_ms
-- Returns what take_slot returns: 0 taken, -2 all slots busy, else ms to wait.
return take_slot(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
                 tonumber(ARGV[4]))
