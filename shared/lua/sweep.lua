-- Apply a cancel or a pause to a batch of one crawl's job ids found in arq's queue (which all
-- crawls share, so the caller scans it for the crawl's ids and calls this per batch).
-- Cancelled: a queued job is removed with its payload; a running one is put in arq's abort set.
-- Paused: a queued job moves to the crawl's parked set (resume.lua moves it back).
-- KEYS: meta, queue, parked, arq abort set
-- ARGV: job_prefix, in_progress_prefix, now_ms, then the job ids
-- Returns {removed or parked, aborted}.
local state = redis.call('HGET', KEYS[1], 'state')
local moved, aborted = 0, 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local running = redis.call('EXISTS', ARGV[2] .. id) == 1
  if state == 'cancelled' then
    if running then
      aborted = aborted + redis.call('ZADD', KEYS[4], tonumber(ARGV[3]), id)
    else
      redis.call('ZREM', KEYS[2], id)
      -- a job closed a moment ago is still queued until arq cleans up: not counted
      moved = moved + redis.call('DEL', ARGV[1] .. id)
    end
  elseif state == 'paused' and not running and redis.call('EXISTS', ARGV[1] .. id) == 1 then
    local score = redis.call('ZSCORE', KEYS[2], id)
    if score then
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZADD', KEYS[3], score, id)
      moved = moved + 1
    end
  end
end
return {moved, aborted}
