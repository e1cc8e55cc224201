-- The per-host frontier, included at the top of every script that admits URLs, closes jobs or
-- promotes them (after seen.lua). shared/keys.py documents every key built here; the tests pin
-- that both build the same names.
--
-- Every script that includes this takes the same head:
--   KEYS[1] arq's queue, KEYS[2] arq's abort set
--   ARGV[1] now (ms, the caller's clock, as arq compares queue scores), ARGV[2] slot lease (ms),
--   ARGV[3] arq's job key prefix, ARGV[4] its in-progress prefix
-- and its own arguments from ARGV[5] on (F.arg).
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
  arg = 5,
  earliest = 0,
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

-- the crawl of a job id (ids start with '<crawl>:', and crawl ids never contain ':')
local function crawl_of(id)
  return string.match(id, '^[^:]+')
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
                         'robots', 'max_pages', 'depth', 'host_pages', 'adaptive',
                         'sitemap_urls', 'sitemap_files', 'lastmods')
    cfg = {state = v[1], limit = tonumber(v[2] or '8'), delay = tonumber(v[3] or '0'),
           robots = v[4] == '1', max_pages = tonumber(v[5] or '0'), depth = tonumber(v[6] or '0'),
           host_pages = tonumber(v[7] or '0'), adaptive = v[8] ~= '0',
           sitemap_urls = tonumber(v[9] or '0'), sitemap_files = tonumber(v[10] or '0'),
           lastmods = v[11] == '1'}
    crawls[c] = cfg
  end
  return cfg
end

local function live(cfg)
  return cfg.state == 'running' or cfg.state == 'paused'
end

-- Adaptive politeness (a crawl's `adaptive`, on unless --no-adaptive), from what the closes
-- of its pages and robots.txt jobs saw of the host, kept in the host's state, so every crawl
-- and worker sees it:
-- - pace: a fetch that took SLOW_MS or more moves the host's pace halfway toward PACE_FACTOR
--   times its duration, kept between PACE_MIN_MS and PACE_MAX_MS; a quicker one halves it,
--   and under PACE_MIN_MS it is dropped. The pace is a delay between request starts, like
--   --per-host-delay (the larger of the two and of Crawl-delay holds). A host that answers
--   in less than SLOW_MS is never paced: its closes write nothing for it.
-- - strikes: a timeout of a request sent after the host's last strike is a strike (requests
--   that were in flight together time out together, and count once): it halves the host's
--   slots (`cap`, 1 at least) and holds the host STRIKE_HOLD_MS, doubled per strike; any
--   answer ends the run of strikes, and each answer gives back one slot. After GIVE_UP_STRIKES
--   strikes in a row the crawl gives the host up (`C:gave_up`): its URLs are promoted at once,
--   marked, and the workers record each as failed, "host unresponsive", without a request.
local SLOW_MS = 1000
local PACE_FACTOR = 2
local PACE_MIN_MS = 2000
local PACE_MAX_MS = 30000
local STRIKE_HOLD_MS = 1000
local GIVE_UP_STRIKES = 3

-- what the closes of this call saw, by host: {crawl, its slot limit, took (ms), signal}
-- with signal 'answer' (a response, any status) or 'timeout' (none in time)
local observed = {}
local function observe(host, c, cfg, took, signal)
  if cfg.adaptive and live(cfg) and (signal == 'answer' or signal == 'timeout') then
    local seen = observed[host] or {}
    seen[#seen + 1] = {c = c, limit = cfg.limit, took = took, signal = signal}
    observed[host] = seen
  end
end

-- Take in what was observed of a host (h as fill reads it); h.adapted says its state changed.
local function adapt(h, seen)
  for _, o in ipairs(seen) do
    if o.signal == 'timeout' then
      if F.now - o.took >= h.struck then
        h.strikes, h.struck = h.strikes + 1, F.now
        local slots = math.min(h.cap > 0 and h.cap or o.limit, o.limit)
        h.cap = math.max(1, math.floor(slots / 2))
        local hold = math.min(PACE_MAX_MS, STRIKE_HOLD_MS * 2 ^ (h.strikes - 1))
        h.next, h.paced = math.max(h.next, F.now + hold), true
        if h.strikes >= GIVE_UP_STRIKES then
          h.gave_up[o.c] = true
        end
        h.adapted = true
      end
    else
      if h.strikes > 0 then
        h.strikes, h.adapted = 0, true
      end
      if h.cap > 0 then
        h.cap, h.adapted = h.cap + 1, true
        if h.cap >= o.limit then
          h.cap = 0
        end
      end
      local pace = h.pace
      if o.took >= SLOW_MS then
        pace = math.max(PACE_MIN_MS, math.min(PACE_MAX_MS, (pace + PACE_FACTOR * o.took) / 2))
      elseif pace > 0 then
        pace = pace / 2
        if pace < PACE_MIN_MS then
          pace = 0
        end
      end
      if pace ~= h.pace then
        h.pace, h.adapted = math.floor(pace), true
      end
    end
  end
end

-- counters: read once per crawl, changed in Lua, the changed ones written back in one HSET
-- (flush_stats), with the time a job of the crawl last closed ('progress_at', ms), by which
-- `status` tells a crawl that stalled. A field never written reads as 0.
local STAT_FIELDS = {'fetched', 'failed', 'excluded', 'bytes', 'queued', 'pending', 'seen',
                     'capped', 'hosts_dropped', 'sitemaps', 'sitemaps_skipped', 'sitemap_urls'}
local stats = {}
local stats_read = {}  -- per crawl: the counters as read, so that only changed ones are written
local function stat_table(c)
  local s = stats[c]
  if not s then
    local v = redis.call('HMGET', crawl_key(c, 'stats'), unpack(STAT_FIELDS))
    s, stats_read[c] = {}, {}
    for i, name in ipairs(STAT_FIELDS) do
      s[name] = tonumber(v[i] or '0')
      stats_read[c][name] = s[name]
    end
    stats[c] = s
  end
  return s
end

local function bump(c, field, n)
  local s = stat_table(c)
  s[field] = s[field] + n
  if field == 'pending' and n < 0 then
    s.progressed = true
  end
end

-- writes the counters back; queues the finalize job of a live crawl left with nothing pending
local function flush_stats()
  for c, s in pairs(stats) do
    local fields, read = {}, stats_read[c]
    for _, name in ipairs(STAT_FIELDS) do
      if s[name] ~= read[name] then
        fields[#fields + 1] = name
        fields[#fields + 1] = s[name]
        read[name] = s[name]
      end
    end
    if s.progressed then
      fields[#fields + 1] = 'progress_at'
      fields[#fields + 1] = F.now
    end
    if #fields > 0 then
      redis.call('HSET', crawl_key(c, 'stats'), unpack(fields))
    end
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

-- A backlog entry: 'depth hops retried not_before url [parent]' for a page, 'R retried
-- not_before origin' for the robots.txt of an origin (fetched before any page of it), 'S
-- retried not_before level discover url' for a sitemap (level: the indexes above it; discover
-- 1: the /sitemap.xml of a seed's origin, whose job also reads its robots.txt Sitemap: lines);
-- retried counts the transient failures of the URL so far.
local function page_entry(depth, hops, retried, not_before, url, parent)
  local entry = depth .. ' ' .. hops .. ' ' .. retried .. ' ' .. not_before .. ' ' .. url
  if parent and parent ~= '' then
    entry = entry .. ' ' .. parent
  end
  return entry
end

-- hosts whose backlog changed or whose slot came free in this call, with the crawl that
-- changed them (nil: any): filled at the end
local touched, touched_order = {}, {}
local function touch(host, c)
  local by = touched[host]
  if by == nil then
    touched[host] = c or false
    touched_order[#touched_order + 1] = host
  elseif by ~= c then
    touched[host] = false
  end
end

-- Put an entry at the front of a backlog but behind the robots.txt entries there (at most a
-- few, one per origin of the host the crawl has just met), which must be fetched first.
local AFTER_ROBOTS = 'after robots'
local function push_after_robots(backlog, entry)
  local head = redis.call('LRANGE', backlog, 0, 15)
  local last_robots
  for _, queued in ipairs(head) do
    if string.sub(queued, 1, 2) ~= 'R ' then
      break
    end
    last_robots = queued
  end
  if last_robots then
    return redis.call('LINSERT', backlog, 'AFTER', last_robots, entry)
  end
  return redis.call('LPUSH', backlog, entry)
end

-- Put an entry in the crawl's backlog on `host` (at the front if `front`, behind its robots.txt
-- entries if AFTER_ROBOTS), making sure the host lists the crawl among its queues and the crawl
-- lists the host.
local function push(c, host, entry, front)
  local backlog = crawl_host_key(host, c, 'backlog')
  local length
  if front == AFTER_ROBOTS then
    length = push_after_robots(backlog, entry)
  elseif front then
    length = redis.call('LPUSH', backlog, entry)
  else
    length = redis.call('RPUSH', backlog, entry)
  end
  -- a crawl stays listed on a host when its backlog there runs empty, until it ends; one
  -- listed anew goes before all those listed already (turns count up from -now)
  if length == 1 and redis.call('SADD', crawl_key(c, 'hosts'), host) == 1 then
    local queues = host_key(host, 'queues')
    local first = redis.call('ZRANGE', queues, 0, 0, 'WITHSCORES')
    local turn = -F.now
    if first[2] then
      turn = math.min(turn, tonumber(first[2]) - 1)
    end
    redis.call('ZADD', queues, 'NX', turn, c)
    redis.call('HINCRBY', host_key(host, 'state'), 'crawls', 1)
  end
  -- A backlog that had entries belongs to a host whose slots are all taken (or whose crawl
  -- waits for robots.txt or is paused): every slot given back and every first entry fills
  -- the host. Now and then such a host is filled all the same, so that slots whose jobs
  -- vanished (their leases end) cannot hold a backlog for ever.
  if length == 1 or (F.now + length) % 32 == 0 then
    touch(host, c)
  end
end

-- The first time the crawl meets an origin (looked up only when it is in `new_origins`, or
-- when that is nil), the origin's robots.txt goes to the front of its host's backlog.
local function gate_origin(c, cfg, origin, host, new_origins)
  if cfg.robots and (new_origins == nil or new_origins[origin])
     and redis.call('SADD', crawl_key(c, 'origins'), origin) == 1 then
    push(c, host, 'R 0 0 ' .. origin, true)
    bump(c, 'pending', 1)
  end
end

-- admit(c, fp, url, depth, hops, parent, new_origins): make `depth` the shortest known depth
-- of the URL and, when that is new or better than before, put it in its host's backlog
-- (behind the robots.txt of its origin, the first time the crawl meets that origin). The
-- crawl's origins are looked up only for those in `new_origins` (nil: all), the origins the
-- calling worker has not sent before. Returns 1 if it did.
-- An improved depth keeps the "fetched" mark, so the page is counted once however often it is
-- fetched; `seen` counts the URLs seen (capped at max_pages), `pending` every backlog entry
-- and job of the crawl.
local function admit(c, fp, url, depth, hops, parent, new_origins)
  local cfg = crawl_cfg(c)
  local seen = crawl_key(c, 'seen:')
  local best, fetched = seen_get(seen, fp)
  if best then
    if depth >= best then
      return 0
    end
  else
    if cfg.max_pages > 0 and stat_table(c).seen >= cfg.max_pages then
      bump(c, 'capped', 1)
      return 0
    end
    bump(c, 'seen', 1)
  end
  seen_set(seen, fp, depth, fetched)
  local origin = origin_of(url)
  local host = host_of(origin)
  gate_origin(c, cfg, origin, host, new_origins)
  push(c, host, page_entry(depth, hops, 0, 0, url, parent), false)
  bump(c, 'pending', 1)
  bump(c, 'queued', 1)
  return 1
end

-- admit_sitemap(c, url, level, discover, new_origins): put a sitemap in its host's backlog
-- (entry 'S ...', see page_entry), once per crawl, while the crawl has admitted fewer than its
-- cap of sitemaps (`sitemap_files`; each one refused past it counts in the crawl's reasons).
-- It goes to the front, behind the robots.txt entries: the URLs it lists are admitted at
-- depth 0, and read behind the host's pages it would find many of them fetched deeper already,
-- to fetch again. `new_origins` as admit's. Returns 1 if it did.
local function admit_sitemap(c, url, level, discover, new_origins)
  local cfg = crawl_cfg(c)
  local listed = crawl_key(c, 'sitemaps')
  if redis.call('SISMEMBER', listed, url) == 1 then
    return 0
  end
  if redis.call('SCARD', listed) >= cfg.sitemap_files then
    -- a reason of shared/failures.py's (FailureKind.SITEMAP_FILE_CAP)
    redis.call('HINCRBY', crawl_key(c, 'reasons'), 'sitemap: crawl cap of sitemaps reached', 1)
    return 0
  end
  redis.call('SADD', listed, url)
  local origin = origin_of(url)
  local host = host_of(origin)
  push(c, host, 'S 0 0 ' .. level .. ' ' .. discover .. ' ' .. url, AFTER_ROBOTS)
  gate_origin(c, cfg, origin, host, new_origins)
  bump(c, 'pending', 1)
  return 1
end

-- queue one job, holding one of its host's slots until it closes; F.earliest is the earliest
-- start of the jobs queued in this call (0: none), which tells the calling worker when to look
-- at the queue
local function queue_job(slots, id, payload, start)
  if F.earliest == 0 or start < F.earliest then
    F.earliest = start
  end
  redis.call('SET', F.job_prefix .. id, payload)
  redis.call('ZADD', F.queue, start, id)
  redis.call('ZADD', slots, start + F.lease, id)
end

-- Free the slots whose lease ended and whose job is gone (it vanished without being closed);
-- returns the slots still taken.
local function purge_slots(slots)
  local expired = redis.call('ZRANGEBYSCORE', slots, '-inf', F.now, 'LIMIT', 0, 16)
  for _, id in ipairs(expired) do
    if redis.call('EXISTS', F.job_prefix .. id) == 0 then
      redis.call('ZREM', slots, id)
    end
  end
  return redis.call('ZCARD', slots)
end

-- Drop an ended crawl's backlog on a host and take it off the host's queues; what adaptive
-- politeness learnt of the host lasts while a crawl is listed there, so that a later crawl
-- neither inherits an old pace nor gives the host up at its first timeout.
local function forget_crawl(host, c)
  redis.call('DEL', crawl_host_key(host, c, 'backlog'))
  local state = host_key(host, 'state')
  if redis.call('ZREM', host_key(host, 'queues'), c) == 1
     and redis.call('HINCRBY', state, 'crawls', -1) <= 0 then
    redis.call('HDEL', state, 'pace', 'cap', 'strikes', 'struck')
  end
  redis.call('HDEL', state, c .. ':robots', c .. ':delay', c .. ':pages', c .. ':gave_up')
end

-- A host with a delay between request starts has one job at most queued and not started yet
-- (`ahead`, 'start id' in its state): the host's next job is promoted when that one starts
-- (claim.lua, start + delay) or when a slot comes free, whichever is later. Planning several
-- starts ahead would space them by the delay only if each were claimed on time, and one
-- claimed late would bring the next too near. A job ahead that never starts (its crawl
-- cancelled, or its job lost) stops counting once its crawl has ended or its lease is over.
-- A job promoted when the one before it started also names that one, its planned start and
-- the delay ('start id before_start before_id delay'): should the one before close without
-- sending a request (robots.txt excluded its page, its sitemap lastmod spared it, its crawl
-- gave the host up), it gives its turn back (give_back).
local function ahead_parts(ahead)
  return string.match(ahead, '^(%d+) (%S+)')
end

local function ahead_before(ahead)
  return string.match(ahead, '^(%d+) (%S+) (%d+) (%S+) (%d+)$')
end

local function ahead_open(h)
  if not h.ahead then
    return true
  end
  local start, id = ahead_parts(h.ahead)
  if not start or F.now > tonumber(start) + F.lease or not live(crawl_cfg(crawl_of(id))) then
    h.ahead, h.paced = nil, true
    return true
  end
  return false
end

-- A crawl that has had its budget of pages on a host (host_pages) fetches no more there: the
-- rest of its backlog is dropped, counted as capped, and so is whatever is admitted later.
local function over_budget(host, c, cfg, pages)
  if cfg.host_pages == 0 or pages < cfg.host_pages then
    return false
  end
  local backlog = crawl_host_key(host, c, 'backlog')
  local dropped = redis.call('LLEN', backlog)
  if dropped > 0 then
    redis.call('DEL', backlog)
    bump(c, 'pending', -dropped)
    bump(c, 'capped', dropped)
  end
  return true
end

-- Promote the crawl's next URLs on `host` while the crawl's slot limit and page budget allow.
-- `h` is the host's state as read by fill: busy (slots taken by every crawl), purged (whether
-- the slots were purged already in this call), next (the next job's earliest start), ahead
-- (the job queued and not started of a host with a delay), pages (crawl -> pages promoted,
-- as changed in this call), what adapts (pace, cap, gave_up: see adapt), and the crawl's
-- gate: robots (the robots.txt job its backlog waits for), delay (its Crawl-delay, ms), the
-- pages it had promoted on the host, and whether it gave the host up.
-- A crawl that gave the host up promotes its URLs at once, whatever the host's pace, each
-- job marked so that the worker records it as failed without fetching it.
-- Returns true if it promoted anything.
local function fill_crawl(host, c, h, robots_gate, crawl_delay, pages_promoted, gave_up)
  local pages = tonumber(pages_promoted or '0')
  local cfg = crawl_cfg(c)
  if not live(cfg) then
    forget_crawl(host, c)
    return false
  end
  if cfg.state ~= 'running' or robots_gate or over_budget(host, c, cfg, pages) then
    return false
  end
  local drain = cfg.adaptive and (gave_up == '1' or h.gave_up[c] ~= nil)
  local delay, limit = 0, cfg.limit
  if not drain then
    delay = math.max(cfg.delay, tonumber(crawl_delay or '0'))
    if cfg.adaptive then
      delay = math.max(delay, h.pace)
      if h.cap > 0 and h.cap < limit then
        limit = h.cap
      end
    end
  end
  if delay > 0 and not ahead_open(h) then
    return false
  end
  local slots = host_key(host, 'slots')
  if h.busy >= limit and not h.purged then
    h.busy, h.purged = purge_slots(slots), true
  end
  local backlog = crawl_host_key(host, c, 'backlog')
  local promoted, gated = false, false
  while h.busy < limit and not gated and (cfg.host_pages == 0 or pages < cfg.host_pages) do
    local entry = redis.call('LPOP', backlog)
    if not entry then
      break
    end
    local start
    if string.sub(entry, 1, 1) == 'R' then
      local retried, not_before, origin = string.match(entry, '^R (%d+) (%d+) (.+)$')
      start = math.max(F.now, tonumber(not_before), h.next)
      local id = c .. ':robots:' .. fingerprint(origin)
      local args = cmsgpack.pack(origin) .. cmsgpack.pack(tonumber(retried))
      local nargs = 2
      if drain then
        start, args, nargs = F.now, args .. cmsgpack.pack(true), 3
      end
      queue_job(slots, id, job_payload('fetch_robots', args, nargs), start)
      redis.call('HSET', host_key(host, 'state'), c .. ':robots', id)
      gated = true
    elseif string.sub(entry, 1, 1) == 'S' then
      local retried, not_before, level, discover, url =
        string.match(entry, '^S (%d+) (%d+) (%d+) (%d) (.+)$')
      start = math.max(F.now, tonumber(not_before), h.next)
      local id = c .. ':sitemap:' .. fingerprint(url)
      local args = cmsgpack.pack(url) .. cmsgpack.pack(tonumber(level))
        .. cmsgpack.pack(tonumber(retried)) .. cmsgpack.pack(discover == '1')
      local nargs = 4
      if drain then
        start, args, nargs = F.now, args .. cmsgpack.pack(true), 5
      end
      queue_job(slots, id, job_payload('fetch_sitemap', args, nargs), start)
      -- the host's next job waits for this one's close, the delay after its start
      gated = delay > 0
    else
      local depth, hops, retried, not_before, url, parent =
        string.match(entry, '^(%d+) (%d+) (%d+) (%d+) (%S+) ?(%S*)$')
      start = math.max(F.now, tonumber(not_before), h.next)
      local packed_parent = '\192'
      if parent ~= '' then
        packed_parent = cmsgpack.pack(parent)
      end
      -- a URL found nearer since it was admitted starts 'stale' (claim.lua)
      local args = cmsgpack.pack(url) .. cmsgpack.pack(tonumber(depth)) .. packed_parent
        .. cmsgpack.pack(tonumber(hops)) .. cmsgpack.pack(tonumber(retried))
        .. cmsgpack.pack(delay)
      local nargs = 6
      if drain then
        start, args, nargs = F.now, args .. cmsgpack.pack(true), 7
      end
      local id = c .. ':' .. fingerprint(url) .. ':' .. depth
      queue_job(slots, id, job_payload('crawl_page', args, nargs), start)
      pages = pages + 1
      h.pages[c] = pages
      if delay > 0 then
        h.ahead = start .. ' ' .. id
        if h.released then
          h.ahead = h.ahead .. ' ' .. h.released.start .. ' ' .. h.released.id .. ' ' .. delay
          h.released = nil
        end
        gated = true
      end
    end
    h.busy = h.busy + 1
    promoted = true
    if delay > 0 then
      h.next = start + delay
      h.paced = true
    end
  end
  return promoted
end

-- Each crawl listed on the host in turn (the least recently served first: a crawl's score in
-- the host's queues is its turn).
local function fill_queues(host, state, h)
  local queues = host_key(host, 'queues')
  local waiting = redis.call('ZRANGE', queues, 0, -1, 'WITHSCORES')
  local last = tonumber(waiting[#waiting] or '0')
  for i = 1, #waiting, 2 do
    local crawl = waiting[i]
    local gate = redis.call('HMGET', state, crawl .. ':robots', crawl .. ':delay',
                            crawl .. ':pages', crawl .. ':gave_up')
    if fill_crawl(host, crawl, h, gate[1], gate[2], gate[3], gate[4]) and #waiting > 2 then
      last = last + 1
      redis.call('ZADD', queues, 'XX', last, crawl)
    end
  end
end

-- jobs that have stopped waiting to start, by host: started (claim.lua; next = when the
-- host's next request may start) or closed (next = 0). The host's job ahead, if one of them,
-- is then no longer ahead.
local done_waiting = {}

-- Fill one host's free slots from the backlogs of the crawls waiting on it: only `c`'s when
-- it is the one crawl listed there (its state read in one HMGET), else every crawl's.
local function fill(host, c)
  local slots = host_key(host, 'slots')
  local state = host_key(host, 'state')
  local h = {busy = redis.call('ZCARD', slots), purged = false, paced = false, pages = {},
             gave_up = {}, adapted = false}
  local v
  if c then
    v = redis.call('HMGET', state, 'next', 'ahead', 'pace', 'cap', 'strikes', 'struck',
                   'crawls', c .. ':robots', c .. ':delay', c .. ':pages', c .. ':gave_up')
  else
    v = redis.call('HMGET', state, 'next', 'ahead', 'pace', 'cap', 'strikes', 'struck')
  end
  h.next = tonumber(v[1] or '0')
  if v[2] and v[2] ~= '' then
    h.ahead = v[2]
  end
  h.pace, h.cap = tonumber(v[3] or '0'), tonumber(v[4] or '0')
  h.strikes, h.struck = tonumber(v[5] or '0'), tonumber(v[6] or '0')
  local done = done_waiting[host]
  if done and h.ahead then
    local start, id = ahead_parts(h.ahead)
    if id == done.id then
      if done.next > 0 then  -- it started: the job promoted now comes a delay after it
        h.released = {id = id, start = start}
      end
      h.ahead, h.next, h.paced = nil, math.max(h.next, done.next), true
    end
  end
  if observed[host] then
    adapt(h, observed[host])
  end
  if c and tonumber(v[7] or '0') <= 1 and live(crawl_cfg(c)) then
    fill_crawl(host, c, h, v[8], v[9], v[10], v[11])
  else
    fill_queues(host, state, h)
  end
  -- the host's pace and the crawls' page counts, in one write
  local fields = {}
  if h.paced then
    fields = {'next', h.next, 'ahead', h.ahead or ''}
  end
  if h.adapted then
    for _, pair in ipairs({{'pace', h.pace}, {'cap', h.cap}, {'strikes', h.strikes},
                           {'struck', h.struck}}) do
      fields[#fields + 1] = pair[1]
      fields[#fields + 1] = pair[2]
    end
  end
  for crawl in pairs(h.gave_up) do
    fields[#fields + 1] = crawl .. ':gave_up'
    fields[#fields + 1] = 1
  end
  for crawl, pages in pairs(h.pages) do
    fields[#fields + 1] = crawl .. ':pages'
    fields[#fields + 1] = pages
  end
  if #fields > 0 then
    redis.call('HSET', state, unpack(fields))
  end
end

local function fill_touched()
  for _, host in ipairs(touched_order) do
    fill(host, touched[host] or nil)
  end
end

-- arq's clean-up of a finished job (what its finish_job does; an abort mark is left to arq,
-- which drops old ones), and the slot given back. Returns false if the job had been closed
-- already (a re-run).
local function close_job(id, host, c)
  redis.call('ZREM', host_key(host, 'slots'), id)
  done_waiting[host] = {id = id, next = 0}
  touch(host, c)
  -- a job runs only if its claim found its payload, so both keys are gone only for a re-run
  -- whose close comes second
  if redis.call('DEL', F.job_prefix .. id, F.in_progress_prefix .. id) == 0 then
    return false
  end
  redis.call('ZREM', F.queue, id)
  return true
end

-- A job of a host with a delay that closes without having sent a request (signal UNSENT)
-- gives its turn back: the host's job ahead, promoted when this one started and so queued a
-- delay after it, may start when this one was planned to, or now if that has passed. The last
-- request to the host started no later than a delay before this job's planned start, and any
-- still in flight started before this job did. Nothing moves once the job ahead has been
-- claimed, or when the host's next start was pushed later since (a Retry-After, a strike).
local UNSENT = 'unsent'
local function give_back(host, id)
  local state = host_key(host, 'state')
  local v = redis.call('HMGET', state, 'ahead', 'next')
  if not v[1] then
    return
  end
  local start, ahead, before_start, before, delay = ahead_before(v[1])
  if before ~= id then
    return
  end
  start, before_start, delay = tonumber(start), tonumber(before_start), tonumber(delay)
  local sooner = math.max(F.now, before_start)
  if sooner >= start or tonumber(redis.call('ZSCORE', F.queue, ahead) or '-1') ~= start
     or tonumber(v[2] or '0') ~= start + delay then
    return
  end
  redis.call('ZADD', F.queue, 'XX', sooner, ahead)
  redis.call('HSET', state, 'ahead', sooner .. ' ' .. ahead .. ' ' .. before_start .. ' '
             .. before .. ' ' .. delay, 'next', sooner + delay)
  if F.earliest == 0 or sooner < F.earliest then
    F.earliest = sooner
  end
end

-- close_job for the job of a fetch of `url` (a page or a sitemap), then what the fetch says of
-- its host: adaptive politeness learns from it (`took`, `signal`: observe), and a Retry-After
-- holds the host `hold` ms. Returns the crawl, the URL's origin and host and the crawl's
-- config; nil if the job had been closed already (the hosts it touched filled all the same).
local function close_fetch(id, url, took, signal, hold)
  local c = crawl_of(id)
  local origin = origin_of(url)
  local host = host_of(origin)
  if not close_job(id, host, c) then
    fill_touched()
    return nil
  end
  if signal == UNSENT then
    give_back(host, id)
  end
  local cfg = crawl_cfg(c)
  observe(host, c, cfg, took, signal)
  if hold > 0 then
    local state = host_key(host, 'state')
    local until_ms = F.now + hold
    if until_ms > tonumber(redis.call('HGET', state, 'next') or '0') then
      redis.call('HSET', state, 'next', until_ms)
    end
  end
  return c, origin, host, cfg
end
