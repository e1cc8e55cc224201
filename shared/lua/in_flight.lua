-- How many jobs of a crawl its workers hold (claimed, neither closed nor handed back yet): the
-- crawl's ids in arq's queue with a claim's score (claim.lua: the end of the job's in-progress
-- mark plus its try in sixteenths, never a whole number; a job queued, handed back or deferred
-- has a whole score), still in the future (a dead worker's job stops counting when its mark
-- ends). Read-only. Only the queue's entries due later are looked at: the jobs the fleet holds
-- and those deferred (at most one per host with a delay, and retries waiting out a backoff).
-- KEYS: arq's queue
-- ARGV: now (ms), crawl id, the crawl's finalize job id (not counted: it fetches nothing)
-- Returns the count.
local prefix = ARGV[2] .. ':'
local n, offset = 0, 0
while true do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES',
                           'LIMIT', offset, 1000)
  for i = 1, #batch, 2 do
    local id, score = batch[i], tonumber(batch[i + 1])
    if score ~= math.floor(score) and string.sub(id, 1, #prefix) == prefix and id ~= ARGV[3] then
      n = n + 1
    end
  end
  if #batch < 2000 then
    return n
  end
  offset = offset + 1000
end
