-- The per-host frontier, included at the top of every script that admits URLs, closes jobs or
-- promotes them (after seen.lua). shared/keys.py documents every key built here; the tests pin
-- that both build the same names.
--
-- Every script that includes this takes the same head:
--   KEYS[1] arq's queue, KEYS[2] arq's abort set
--   ARGV[1] now (ms, the caller's clock, as arq compares queue scores), ARGV[2] slot lease (ms),
--   ARGV[3] arq's job key prefix, ARGV[4] its in-progress prefix, ARGV[5] its retry prefix
-- and its own arguments from ARGV[6] on (F.arg).
--
-- A discovered URL waits in its host's backlog (one list per crawl and host, URL and depth
-- only). It becomes an arq job only when the host has a free slot: promotion takes the slot
-- (the job id is its member) and queues the job deferred to the host's next allowed start.
-- Closing the job gives the slot back and promotes the host's next URL, so a host never has
-- more jobs queued or running than slots, and nothing waits in place.
local F = {
  queue = KEYS[1],
  abort = KEYS[2],
  now = tonumber(ARGV[1]),
  lease = tonumber(ARGV[2]),
  job_prefix = ARGV[3],
  in_progress_prefix = ARGV[4],
  retry_prefix = ARGV[5],
  arg = 6,
}

local PREFIX = 'cf'

local function crawl_key(c, part)
  return PREFIX .. ':' .. c .. ':' .. part
end

-- everything of one host shares the {host} hash tag (one Redis Cluster slot)
local function host_key(h, part)
  return PREFIX .. ':{' .. h .. '}:' .. part
end

local function crawl_host_key(h, c, part)
  return PREFIX .. ':{' .. h .. '}:' .. c .. ':' .. part
end

-- origin ('scheme://netloc' of a canonical URL) and host (netloc less the port)
local function origin_of(url)
  return string.match(url, '^%a+://[^/]+')
end

local function host_of(origin)
  local netloc = string.match(origin, '^%a+://(.*)$')
  if string.sub(netloc, 1, 1) == '[' then
    return string.match(netloc, '^(%[[^%]]*%])')
  end
  return string.match(netloc, '^[^:]+')
end

local function fingerprint(url)
  return string.sub(redis.sha1hex(url), 1, 16)
end

-- crawl settings, read once per script call (seed.lua writes them into the crawl's meta)
local crawls = {}
local function crawl_cfg(c)
  local cfg = crawls[c]
  if not cfg then
    local v = redis.call('HMGET', crawl_key(c, 'meta'), 'state', 'host_limit', 'host_delay_ms',
                         'robots', 'max_pages', 'depth')
    cfg = {state = v[1], limit = tonumber(v[2] or '8'), delay = tonumber(v[3] or '0'),
           robots = v[4] == '1', max_pages = tonumber(v[5] or '0'), depth = tonumber(v[6] or '0')}
    crawls[c] = cfg
  end
  return cfg
end

local function live(cfg)
  return cfg.state == 'running' or cfg.state == 'paused'
end

-- counters: read once per crawl, changed in Lua, written back in one HSET (flush_stats)
local STAT_FIELDS = {'fetched', 'failed', 'bytes', 'queued', 'pending', 'seen'}
local stats = {}
local function stat_table(c)
  local s = stats[c]
  if not s then
    local v = redis.call('HMGET', crawl_key(c, 'stats'), unpack(STAT_FIELDS))
    s = {}
    for i, name in ipairs(STAT_FIELDS) do
      s[name] = tonumber(v[i] or '0')
    end
    stats[c] = s
  end
  return s
end

local function bump(c, field, n)
  local s = stat_table(c)
  s[field] = s[field] + n
end

-- writes the counters back; queues the finalize job of a live crawl left with nothing pending
local function flush_stats()
  for c, s in pairs(stats) do
    local fields = {}
    for _, name in ipairs(STAT_FIELDS) do
      fields[#fields + 1] = name
      fields[#fields + 1] = s[name]
    end
    redis.call('HSET', crawl_key(c, 'stats'), unpack(fields))
    if s.pending == 0 and live(crawl_cfg(c)) then
      local id = c .. ':finalize'
      local payload = '\133' .. cmsgpack.pack('t') .. '\192' .. cmsgpack.pack('f')
        .. cmsgpack.pack('finalize_crawl') .. cmsgpack.pack('a') .. '\145' .. cmsgpack.pack(c)
        .. cmsgpack.pack('k') .. '\128' .. cmsgpack.pack('et') .. cmsgpack.pack(F.now)
      redis.call('SET', F.job_prefix .. id, payload)
      redis.call('ZADD', F.queue, F.now, id)
    end
  end
end

-- arq's payload of a job: msgpack {t: nil, f: name, a: args, k: {}, et: now}, args given
-- packed (shared/jobs.py builds the same map; a test compares them)
local function job_payload(name, packed_args, nargs)
  return '\133' .. cmsgpack.pack('t') .. '\192' .. cmsgpack.pack('f') .. cmsgpack.pack(name)
    .. cmsgpack.pack('a') .. string.char(0x90 + nargs) .. packed_args
    .. cmsgpack.pack('k') .. '\128' .. cmsgpack.pack('et') .. cmsgpack.pack(F.now)
end

-- A backlog entry: 'depth hops not_before url [parent]' for a page, 'R not_before origin' for
-- the robots.txt of an origin (fetched before any page of it).
local function page_entry(depth, hops, not_before, url, parent)
  local entry = depth .. ' ' .. hops .. ' ' .. not_before .. ' ' .. url
  if parent and parent ~= '' then
    entry = entry .. ' ' .. parent
  end
  return entry
end

-- hosts whose backlog changed or whose slot came free in this call: filled at the end
local touched, touched_order = {}, {}
local function touch(host)
  if not touched[host] then
    touched[host] = true
    touched_order[#touched_order + 1] = host
  end
end

-- Put an entry in the crawl's backlog on `host` (at the front if `front`), making sure the
-- host lists the crawl among its queues and the crawl lists the host.
local function push(c, host, entry, front)
  local backlog = crawl_host_key(host, c, 'backlog')
  local length
  if front then
    length = redis.call('LPUSH', backlog, entry)
  else
    length = redis.call('RPUSH', backlog, entry)
  end
  -- a crawl stays listed on a host when its backlog there runs empty, until it ends; one
  -- listed anew goes before those already served (turns count up from the newest's -now)
  if length == 1 and redis.call('SADD', crawl_key(c, 'hosts'), host) == 1 then
    redis.call('ZADD', host_key(host, 'queues'), 'NX', -F.now, c)
  end
  touch(host)
end

-- admit(c, fp, url, depth, hops, parent): make `depth` the shortest known depth of the URL
-- and, when that is new or better than before, put it in its host's backlog (behind the
-- robots.txt of its origin, the first time the crawl meets that origin). Returns 1 if it did.
-- An improved depth keeps the "fetched" mark, so the page is counted once however often it is
-- fetched; `seen` counts the URLs seen (capped at max_pages), `pending` every backlog entry
-- and job of the crawl.
local function admit(c, fp, url, depth, hops, parent)
  local cfg = crawl_cfg(c)
  local seen = crawl_key(c, 'seen:')
  local best, fetched = seen_get(seen, fp)
  if best then
    if depth >= best then
      return 0
    end
  else
    if cfg.max_pages > 0 and stat_table(c).seen >= cfg.max_pages then
      return 0
    end
    bump(c, 'seen', 1)
  end
  seen_set(seen, fp, depth, fetched)
  local origin = origin_of(url)
  local host = host_of(origin)
  if cfg.robots and redis.call('SADD', crawl_key(c, 'origins'), origin) == 1 then
    push(c, host, 'R 0 ' .. origin, true)
    bump(c, 'pending', 1)
  end
  push(c, host, page_entry(depth, hops, 0, url, parent), false)
  bump(c, 'pending', 1)
  bump(c, 'queued', 1)
  return 1
end

-- queue one job, holding one of its host's slots until it closes; returns its start time
local function queue_job(slots, id, payload, start)
  redis.call('SET', F.job_prefix .. id, payload)
  redis.call('ZADD', F.queue, start, id)
  redis.call('ZADD', slots, start + F.lease, id)
end

-- Promote the crawl's next URLs on `host` while the crawl's slot limit allows; `busy` is the
-- slots the host has taken (by every crawl). Returns the slots taken after it.
local function fill_crawl(host, c, busy)
  local cfg = crawl_cfg(c)
  local queues = host_key(host, 'queues')
  local backlog = crawl_host_key(host, c, 'backlog')
  if not live(cfg) then  -- an ended crawl's backlog goes
    redis.call('DEL', backlog, crawl_host_key(host, c, 'gate'))
    redis.call('ZREM', queues, c)
    return busy
  end
  if cfg.state ~= 'running' or busy >= cfg.limit then
    return busy
  end
  local gate_key = crawl_host_key(host, c, 'gate')
  local gate = redis.call('HMGET', gate_key, 'robots', 'delay')
  if gate[1] then  -- its robots.txt is being fetched
    return busy
  end
  local delay = math.max(cfg.delay, tonumber(gate[2] or '0'))
  local slots = host_key(host, 'slots')
  local pace = host_key(host, 'pace')
  local next_start = tonumber(redis.call('HGET', pace, 'next') or '0')
  local paced, gated = false, false
  local seen = crawl_key(c, 'seen:')
  while busy < cfg.limit and not gated do
    local entry = redis.call('LPOP', backlog)
    if not entry then
      break
    end
    local start
    if string.sub(entry, 1, 1) == 'R' then
      local not_before, origin = string.match(entry, '^R (%d+) (.+)$')
      start = math.max(F.now, tonumber(not_before), next_start)
      local id = c .. ':robots:' .. fingerprint(origin)
      queue_job(slots, id, job_payload('fetch_robots', cmsgpack.pack(origin), 1), start)
      redis.call('HSET', gate_key, 'robots', id)
      busy = busy + 1
      gated = true
    else
      local depth, hops, not_before, url, parent =
        string.match(entry, '^(%d+) (%d+) (%d+) (%S+) ?(%S*)$')
      depth = tonumber(depth)
      local fp = fingerprint(url)
      local best = seen_get(seen, fp)
      if best and best < depth then  -- found again nearer: that entry is the one to fetch
        bump(c, 'pending', -1)
      else
        start = math.max(F.now, tonumber(not_before), next_start)
        local packed_parent = '\192'
        if parent ~= '' then
          packed_parent = cmsgpack.pack(parent)
        end
        local args = cmsgpack.pack(url) .. cmsgpack.pack(depth) .. packed_parent
          .. cmsgpack.pack(tonumber(hops))
        queue_job(slots, c .. ':' .. fp .. ':' .. depth, job_payload('crawl_page', args, 4), start)
        busy = busy + 1
      end
    end
    if start and delay > 0 then
      next_start = start + delay
      paced = true
    end
  end
  if paced then
    redis.call('HSET', pace, 'next', next_start)
  end
  return busy
end

-- Fill one host's free slots from the backlogs of the crawls waiting on it, least recently
-- served first (the score of a crawl in the host's queues is its turn). A slot whose lease ended and whose job is gone (it vanished without being
-- closed) is freed first.
local function fill(host)
  local slots = host_key(host, 'slots')
  local expired = redis.call('ZRANGEBYSCORE', slots, '-inf', F.now, 'LIMIT', 0, 16)
  for _, id in ipairs(expired) do
    if redis.call('EXISTS', F.job_prefix .. id) == 0 then
      redis.call('ZREM', slots, id)
    end
  end
  local busy = redis.call('ZCARD', slots)
  local queues = host_key(host, 'queues')
  local waiting = redis.call('ZRANGE', queues, 0, -1, 'WITHSCORES')
  if #waiting == 2 then
    fill_crawl(host, waiting[1], busy)
    return
  end
  -- several crawls on one host: a crawl served goes behind the others
  local last = tonumber(waiting[#waiting] or '0')
  for i = 1, #waiting, 2 do
    local before = busy
    busy = fill_crawl(host, waiting[i], busy)
    if busy > before then
      last = last + 1
      redis.call('ZADD', queues, 'XX', last, waiting[i])
    end
  end
end

local function fill_touched()
  for _, host in ipairs(touched_order) do
    fill(host)
  end
end

-- arq's clean-up of a finished job (what its finish_job does), and the slot given back.
-- Returns false if the job had been closed already (a re-run).
local function close_job(id, host)
  redis.call('ZREM', host_key(host, 'slots'), id)
  touch(host)
  if redis.call('DEL', F.job_prefix .. id) == 0 then
    return false
  end
  redis.call('DEL', F.in_progress_prefix .. id, F.retry_prefix .. id)
  redis.call('ZREM', F.queue, id)
  redis.call('ZREM', F.abort, id)
  return true
end
