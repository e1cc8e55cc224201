-- Included at the top of the scripts that read, change or drop a crawl's seen URLs (seed,
-- claim, page_done, finish, cancel...). The seen URLs of a crawl are spread over 4,096 small hashes, cf:<crawl>:seen:<xyz>
-- where xyz is the first 3 hex digits of the URL's fingerprint, the field the other 13 and
-- the value 2 * shortest depth, + 1 once the page has been fetched (so a re-fetch at a better
-- depth counts once). Small hashes stay in Redis's compact encoding (ziplist/listpack, see
-- hash-max-ziplist-entries): about 20 bytes per URL, against 100 for a sorted set.
-- shared/keys.py names the same buckets (SEEN_BUCKET_DIGITS).
local SEEN_BUCKET_DIGITS = 3

local function seen_key(prefix, fp)
  return prefix .. string.sub(fp, 1, SEEN_BUCKET_DIGITS)
end

-- seen_get(prefix, fp) -> shortest depth, fetched (true/false); nil if the URL is unseen
local function seen_get(prefix, fp)
  local value = redis.call('HGET', seen_key(prefix, fp), string.sub(fp, SEEN_BUCKET_DIGITS + 1))
  if not value then
    return nil, false
  end
  value = tonumber(value)
  return math.floor(value / 2), value % 2 == 1
end

-- Drop every bucket of a crawl's seen URLs (and of its sitemap lastmods, when
-- `lastmod_prefix` is given), and the robots.txt rules kept for its `origins` (a set; the
-- rules' keys are `robots_prefix` .. origin): what only a live crawl needs.
local function drop_crawl_state(prefix, origins, robots_prefix, lastmod_prefix)
  local batch = {}
  for i = 0, 16 ^ SEEN_BUCKET_DIGITS - 1 do
    local bucket = string.format('%0' .. SEEN_BUCKET_DIGITS .. 'x', i)
    batch[#batch + 1] = prefix .. bucket
    if lastmod_prefix then
      batch[#batch + 1] = lastmod_prefix .. bucket
    end
    if #batch >= 512 then
      redis.call('UNLINK', unpack(batch))
      batch = {}
    end
  end
  for _, origin in ipairs(redis.call('SMEMBERS', origins)) do
    redis.call('UNLINK', robots_prefix .. origin)
  end
end

local function seen_set(prefix, fp, depth, fetched)
  local value = depth * 2
  if fetched then
    value = value + 1
  end
  redis.call('HSET', seen_key(prefix, fp), string.sub(fp, SEEN_BUCKET_DIGITS + 1), value)
end

-- The sitemap lastmods of a crawl --since another (shared/keys.py, cf:<crawl>:lastmod:<xyz>)
-- are bucketed as its seen URLs are, each the latest <lastmod> (Unix seconds) its sitemaps gave
-- a URL at depth 0, so they stay as compact.
local function lastmod_get(prefix, fp)
  return tonumber(redis.call('HGET', seen_key(prefix, fp), string.sub(fp, SEEN_BUCKET_DIGITS + 1)))
end

local function lastmod_set(prefix, fp, seconds)
  redis.call('HSET', seen_key(prefix, fp), string.sub(fp, SEEN_BUCKET_DIGITS + 1), seconds)
end
