-- Drop a batch of a cancelled crawl's job ids found in arq's queue (which all crawls share, so
-- the caller scans it for the crawl's ids and calls this per batch): a queued job is removed
-- with its payload and gives its host slot back; a running one is put in arq's abort set.
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), then the job ids
-- Returns {removed, aborted}.
local removed, aborted = 0, 0
for i = F.arg, #ARGV do
  local id = ARGV[i]
  if redis.call('EXISTS', F.in_progress_prefix .. id) == 1 then
    aborted = aborted + redis.call('ZADD', F.abort, F.now, id)
  else
    redis.call('ZREM', F.queue, id)
    local payload = redis.call('GET', F.job_prefix .. id)
    -- a job closed a moment ago is still queued until arq cleans up: not counted
    if payload then
      redis.call('DEL', F.job_prefix .. id)
      local job = cmsgpack.unpack(payload)
      if job.f ~= 'finalize_crawl' then
        local host = host_of(origin_of(job.a[1]))
        redis.call('ZREM', host_key(host, 'slots'), id)
        touch(host, nil)
      end
      removed = removed + 1
    end
  end
end
fill_touched()
return {removed, aborted}
