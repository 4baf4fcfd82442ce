"""The Lua scripts of the Redis frontier: each atomic step of a shared crawl, one script call.

Every script gets the crawl's key prefix ``scraper:{CRAWL}:`` as ``ARGV[1]`` and one key of
the crawl as ``KEYS[1]``, so that Redis Cluster routes it to the crawl's slot (all keys of a
crawl share the ``{CRAWL}`` hash tag). Time is Redis's ``TIME``: machines with skewed
clocks still agree on leases and politeness.

Keys under the prefix (see ``scraper.redisfrontier`` for what they mean to a crawl)::

    q:HOST       list     requests queued for HOST, each "ATTEMPTS|JSON"
    hosts        set      hosts with queued requests
    ready        zset     hosts that may get a lease (queued, in-flight < per_host),
                          scored by their next allowed start (ms)
    inflight     hash     HOST -> leases held
    next         hash     HOST -> next allowed start (ms)
    crawldelay   hash     HOST -> robots.txt Crawl-delay (ms)
    robots       string   set when the crawl obeys robots.txt: a HOST not in robotsknown
    robotsknown  hash     (HOST -> 1) gets one lease at most, whose process reads robots.txt
    throttled    hash     HOST -> end of the slow-down after a 429/503 (ms)
    leases       zset     TOKEN -> expiry (ms);   lease  hash  TOKEN -> "ATTEMPTS|HOST|JSON"
    token        string   the last fencing token handed out
    queued       string   requests queued, all hosts;  admitted  string  requests ever queued
    dedup        string   how seen URLs are kept: "set" or "bloom" (``scraper.redisdedup``)
    seen:BUCKET  set      64-bit fingerprints of (page kind, canonical URL), kept as intsets
    bloom, bloom:I        or the Bloom filters' state and bits
    unique:BUCKET set     64-bit keys of the records written under ``unique:``, as intsets
    records      stream   the records, one entry a page: field "p" = JSON lines
    stats        hash     counts: done, pages, records, dead, failed:REASON, skipped:REASON ...
    dead         list     the JSON of requests whose attempts ran out
    procs        zset     PROCESS -> last seen (ms);  waiting  set  processes blocked in claim
    wake:PROC    list     pushed to wake PROC's BLPOP
    seed:lock, seed:cursor, seeded        who seeds, how far, and that seeding is done
"""

from __future__ import annotations

from scraper import redisdedup

PRELUDE = (
    """
if redis.replicate_commands then redis.replicate_commands() end
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(value)
  return tonumber(value or '0') or 0
end
local robots_on = nil
-- Whether HOST gets one lease at most: robots.txt is obeyed and not known yet for HOST.
local function gated(host)
  if robots_on == nil then robots_on = redis.call('EXISTS', P .. 'robots') == 1 end
  return robots_on and redis.call('HEXISTS', P .. 'robotsknown', host) == 0
end
local function refresh(host, per_host)
  if redis.call('LLEN', P .. 'q:' .. host) > 0 then
    redis.call('SADD', P .. 'hosts', host)
    local cap = per_host
    if gated(host) then cap = 1 end
    if num(redis.call('HGET', P .. 'inflight', host)) < cap then
      redis.call('ZADD', P .. 'ready', num(redis.call('HGET', P .. 'next', host)), host)
    else
      redis.call('ZREM', P .. 'ready', host)
    end
  else
    redis.call('SREM', P .. 'hosts', host)
    redis.call('ZREM', P .. 'ready', host)
  end
end
local function wake()
  local waiting = redis.call('SMEMBERS', P .. 'waiting')
  for _, proc in ipairs(waiting) do
    redis.call('RPUSH', P .. 'wake:' .. proc, '1')
    redis.call('PEXPIRE', P .. 'wake:' .. proc, 60000)
  end
  if #waiting > 0 then redis.call('DEL', P .. 'waiting') end
end
local function finished()
  return num(redis.call('GET', P .. 'queued')) == 0
    and redis.call('ZCARD', P .. 'leases') == 0
    and redis.call('EXISTS', P .. 'seeded') == 1
end
"""
    + redisdedup.LUA
    + """
-- "ATTEMPTS|REST" -> ATTEMPTS, REST
local function split(text)
  local bar = string.find(text, '|', 1, true)
  return tonumber(string.sub(text, 1, bar - 1)), string.sub(text, bar + 1)
end
-- Requests queued by one script call: 'admitted' is read once and written back once by
-- ``queued``, and each host touched is refreshed once, however many requests it got.
local function batch()
  return {admitted = num(redis.call('GET', P .. 'admitted')), new = 0, hosts = {}}
end
-- Queue a request unless it was seen (A, B: its fingerprint as ``seen`` takes it): 'new',
-- 'seen' or 'full' (max_pages).
local function add(ctx, a, b, host, body, max_pages)
  if max_pages >= 0 and ctx.admitted >= max_pages then
    if seen(a, b, false) then return 'seen' end
    return 'full'
  end
  if seen(a, b, true) then return 'seen' end
  ctx.admitted = ctx.admitted + 1
  ctx.new = ctx.new + 1
  local bodies = ctx.hosts[host]
  if not bodies then
    bodies = {}
    ctx.hosts[host] = bodies
  end
  bodies[#bodies + 1] = '0|' .. body
  return 'new'
end
-- Write what ``add`` queued in ``ctx``: the requests, host by host, and the counters.
local function queued(ctx, per_host)
  seen_saved()
  for host, bodies in pairs(ctx.hosts) do
    for first = 1, #bodies, 1000 do  -- unpack() has a stack limit
      redis.call('RPUSH', P .. 'q:' .. host, unpack(bodies, first, math.min(first + 999, #bodies)))
    end
    refresh(host, per_host)
  end
  if ctx.new > 0 then
    redis.call('SET', P .. 'admitted', ctx.admitted)
    redis.call('INCRBY', P .. 'queued', ctx.new)
  end
end
-- End the lease TOKEN: its attempts, host and request JSON, or nil when it is not held.
local function release(token)
  local held = redis.call('HGET', P .. 'lease', token)
  if not held then return nil end
  redis.call('HDEL', P .. 'lease', token)
  redis.call('ZREM', P .. 'leases', token)
  local attempts, rest = split(held)
  local bar = string.find(rest, '|', 1, true)
  local host = string.sub(rest, 1, bar - 1)
  redis.call('HINCRBY', P .. 'inflight', host, -1)
  return attempts, host, string.sub(rest, bar + 1)
end
-- Put a request back at the front of its host's queue, or set it aside as dead.
local function requeue(host, attempts, body, max_attempts)
  if attempts >= max_attempts then
    redis.call('HINCRBY', P .. 'stats', 'dead', 1)
    redis.call('RPUSH', P .. 'dead', body)
  else
    redis.call('LPUSH', P .. 'q:' .. host, attempts .. '|' .. body)
    redis.call('INCR', P .. 'queued')
  end
end
local function pause(host, now, pause_ms)
  local until_ms = now + pause_ms
  local next_start = math.max(num(redis.call('HGET', P .. 'next', host)), until_ms) + 1000
  redis.call('HSET', P .. 'next', host, next_start)
  redis.call('HSET', P .. 'throttled', host, until_ms + 60000)
end
"""
)

COMMIT_PAGE = """
-- Commit the page whose arguments start at ARGV[i] (two: HEAD and RECORDS, see STEP): its
-- records, its new links and its counts, with the end of its lease, in one atomic step.
-- Returns 1 + the records dropped as duplicates, or 0 when the lease is no longer held
-- (nothing written), and the index after its arguments. The page's records go to the
-- stream as one entry (field "p", one JSON line each). A keyed record (its BUCKET not
-- empty) is written only when its key is new to the crawl's unique:BUCKET set (first wins,
-- in a page too). Counts are added to TALLY, hosts to HOSTS; the caller writes and
-- refreshes them once a step.
local function commit_page(i, ctx, tally, hosts, max_pages)
  local head, records = cjson.decode(ARGV[i]), ARGV[i + 1]
  local n_records, keys, links, counts = head[2], head[3], head[4], head[5]
  local attempts, host = release(head[1])
  if not attempts then return 0, i + 2 end
  hosts[host] = true
  local duplicates = 0
  if type(keys) == 'table' then
    local lines, j = {}, 0
    for line in string.gmatch(records, '[^\\n]+') do
      j = j + 1
      local key = keys[j]
      if key[1] == '' or redis.call('SADD', P .. 'unique:' .. key[1], key[2]) == 1 then
        lines[#lines + 1] = line
      else
        duplicates = duplicates + 1
      end
    end
    if #lines > 0 then
      redis.call('XADD', P .. 'records', '*', 'p', table.concat(lines, '\\n'))
    end
  elseif n_records > 0 then
    redis.call('XADD', P .. 'records', '*', 'p', records)
  end
  for _, link in ipairs(links) do
    local added = add(ctx, link[1], link[2], link[3], link[4], max_pages)
    if added == 'seen' then tally['skipped:already seen'] = (tally['skipped:already seen'] or 0) + 1
    elseif added == 'full' then
      tally['skipped:max_pages'] = (tally['skipped:max_pages'] or 0) + 1
    end
  end
  for j = 1, #counts, 2 do
    if counts[j] ~= 'records' then
      tally[counts[j]] = (tally[counts[j]] or 0) + counts[j + 1]
    end
  end
  tally.records = tally.records + n_records - duplicates
  tally.done = tally.done + 1
  if duplicates > 0 then
    tally['dropped:duplicate'] = (tally['dropped:duplicate'] or 0) + duplicates
  end
  return 1 + duplicates, i + 2
end
-- Write a step's counts and new links, refresh the hosts of its pages, and wake the waiting
-- processes when the pages gave them something to do (new links, a host's queue, the end).
local function settle(ctx, tally, hosts, per_host)
  queued(ctx, per_host)
  for name, count in pairs(tally) do
    if count ~= 0 then redis.call('HINCRBY', P .. 'stats', name, count) end
  end
  local more = ctx.new > 0
  for host in pairs(hosts) do
    if not ctx.hosts[host] then refresh(host, per_host) end
    if not more and redis.call('LLEN', P .. 'q:' .. host) > 0 then more = true end
  end
  if more or (next(hosts) ~= nil and finished()) then wake() end
end
"""

STEP = (
    PRELUDE
    + COMMIT_PAGE
    + """
-- ARGV: P, PROCESS, LIMIT, PER_HOST, DELAY_MS, JITTER_MS, LEASE_MS, MAX_ATTEMPTS, SEED,
--       MAX_PAGES, N_PAGES, then per page two: HEAD, the JSON array [TOKEN, N_RECORDS,
--       KEYS, LINKS, COUNTS], and RECORDS, the records' JSON lines joined by newlines.
--       KEYS is 0 when the page kind has no unique:, else one [BUCKET, KEY] per record
--       (both '' for a record without a key: it is always written); LINKS is
--       [[A, B, HOST, JSON]...] (A, B: its fingerprint, as ``seen`` takes it); COUNTS is
--       [NAME, COUNT, NAME, COUNT...]. One JSON argument costs the client far less than
--       the dozen a page would otherwise be.
-- Commits the N_PAGES pages (each as ``commit_page``), then claims up to LIMIT leases (none
-- when LIMIT is 0). Returns {STATUS, WAIT_MS, SEEDED, N_PAGES, COMMITTED...,
-- (TOKEN, HOST, JSON)...}: COMMITTED is 0 (lease not held) or 1 + the duplicates dropped;
-- STATUS 1 when the crawl is finished, 2 when the claim was cut to a share (below); with
-- no lease, WAIT_MS is how long until one may be had (-1: unknown) and PROCESS is woken
-- through wake:PROCESS. When other processes are
-- waiting for leases, they are woken and this call claims only its share of the slots its
-- pages free (their number over the processes, rounded up), so that the slots a commit
-- frees do not all go back to the process that committed.
-- A host whose next start needs no gap (no delay, jitter, Crawl-delay or pause) gives all
-- the leases its free slots allow at once; else one, and the host waits for the gap.
local proc, limit, per_host = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local delay, jitter, lease_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local max_attempts, max_pages, n_pages = tonumber(ARGV[8]), tonumber(ARGV[10]), tonumber(ARGV[11])
local out = {0, -1, 0, n_pages}
local others = 0
if n_pages > 0 and limit > 0 then
  others = redis.call('SCARD', P .. 'waiting') - redis.call('SISMEMBER', P .. 'waiting', proc)
end
local i = 12
if n_pages > 0 then
  local ctx, tally, hosts = batch(), {records = 0, done = 0}, {}
  for k = 1, n_pages do
    local committed
    committed, i = commit_page(i, ctx, tally, hosts, max_pages)
    out[#out + 1] = committed
  end
  settle(ctx, tally, hosts, per_host)
end
if limit <= 0 then return out end
if others > 0 then
  wake()
  limit = math.min(limit, math.ceil(n_pages / (others + 1)))
  out[1] = 2
end
local first = #out
local now = now_ms()
redis.call('ZADD', P .. 'procs', now, proc)
local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, 100)
for _, token in ipairs(expired) do
  local attempts, host, body = release(token)
  if attempts then
    redis.call('HINCRBY', P .. 'stats', 'expired', 1)
    requeue(host, attempts + 1, body, max_attempts)
    refresh(host, per_host)
  end
end
math.randomseed(tonumber(ARGV[9]))
local claimed = 0
while claimed < limit do
  local ready = redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', now, 'LIMIT', 0, 1)
  if #ready == 0 then break end
  local host = ready[1]
  local queue = P .. 'q:' .. host
  local gap = math.max(delay, num(redis.call('HGET', P .. 'crawldelay', host)))
  if now < num(redis.call('HGET', P .. 'throttled', host)) then gap = math.max(gap, 1000) end
  if jitter > 0 then gap = gap + math.floor(math.random() * jitter) end
  local take = 1
  if gap == 0 and not gated(host) then
    local free = per_host - num(redis.call('HGET', P .. 'inflight', host))
    take = math.min(limit - claimed, free, 1000)  -- unpack() below has a stack limit
  end
  local items = redis.call('LRANGE', queue, 0, math.max(take, 1) - 1)
  if #items > 0 then
    redis.call('LTRIM', queue, #items, -1)
    redis.call('DECRBY', P .. 'queued', #items)
    local last = redis.call('INCRBY', P .. 'token', #items)
    local expiries, held = {}, {}
    for n, item in ipairs(items) do
      local attempts, body = split(item)
      local token = last - #items + n
      expiries[#expiries + 1] = now + lease_ms
      expiries[#expiries + 1] = token
      held[#held + 1] = token
      held[#held + 1] = attempts .. '|' .. host .. '|' .. body
      out[#out + 1] = token
      out[#out + 1] = host
      out[#out + 1] = body
    end
    redis.call('ZADD', P .. 'leases', unpack(expiries))
    redis.call('HSET', P .. 'lease', unpack(held))
    redis.call('HINCRBY', P .. 'inflight', host, #items)
    redis.call('HSET', P .. 'next', host, now + gap)
    claimed = claimed + #items
  end
  refresh(host, per_host)
end
if #out > first then return out end
if finished() then
  wake()
  out[1] = 1
  return out
end
local wait = -1
local host_ready = redis.call('ZRANGE', P .. 'ready', 0, 0, 'WITHSCORES')
if #host_ready > 0 then wait = math.max(0, tonumber(host_ready[2]) - now) end
local expiry = redis.call('ZRANGE', P .. 'leases', 0, 0, 'WITHSCORES')
if #expiry > 0 then
  local until_expiry = math.max(0, tonumber(expiry[2]) - now)
  if wait < 0 or until_expiry < wait then wait = until_expiry end
end
out[2] = wait
out[3] = redis.call('EXISTS', P .. 'seeded')
redis.call('DEL', P .. 'wake:' .. proc)
redis.call('SADD', P .. 'waiting', proc)
return out
"""
)

HOST_KNOWN = (
    PRELUDE
    + """
-- ARGV: P, HOST, CRAWL_DELAY_MS, DELAY_MS, PER_HOST
-- HOST's robots.txt is known: its Crawl-delay is kept, the next start of HOST is put
-- at least max(delay, Crawl-delay) from now (the page of the lease that read robots.txt
-- starts now), and HOST gets up to PER_HOST leases from here on.
local host, crawl_delay = ARGV[2], tonumber(ARGV[3])
local delay, per_host = tonumber(ARGV[4]), tonumber(ARGV[5])
if crawl_delay > num(redis.call('HGET', P .. 'crawldelay', host)) then
  redis.call('HSET', P .. 'crawldelay', host, crawl_delay)
end
local known = redis.call('HSET', P .. 'robotsknown', host, 1)
local gap = math.max(delay, num(redis.call('HGET', P .. 'crawldelay', host)))
local next_start = math.max(num(redis.call('HGET', P .. 'next', host)), now_ms() + gap)
redis.call('HSET', P .. 'next', host, next_start)
refresh(host, per_host)
if known == 1 and redis.call('LLEN', P .. 'q:' .. host) > 0 then wake() end
return known
"""
)

FAIL = (
    PRELUDE
    + """
-- ARGV: P, TOKEN, PER_HOST, MAX_ATTEMPTS, REASON, RETRY (0/1), PAUSE_MS
local per_host, max_attempts = tonumber(ARGV[3]), tonumber(ARGV[4])
local attempts, host, body = release(ARGV[2])
if not attempts then return 0 end
local pause_ms = tonumber(ARGV[7])
if pause_ms > 0 then pause(host, now_ms(), pause_ms) end
if ARGV[6] == '1' then
  requeue(host, attempts + 1, body, max_attempts)
else
  redis.call('HINCRBY', P .. 'stats', 'failed:' .. ARGV[5], 1)
end
refresh(host, per_host)
if redis.call('LLEN', P .. 'q:' .. host) > 0 or finished() then wake() end
return 1
"""
)

PAUSE = (
    PRELUDE
    + """
-- ARGV: P, HOST, PAUSE_MS, PER_HOST
pause(ARGV[2], now_ms(), tonumber(ARGV[3]))
refresh(ARGV[2], tonumber(ARGV[4]))
return 1
"""
)

RENEW = (
    PRELUDE
    + """
-- ARGV: P, PROCESS, LEASE_MS, TOKEN...
local now = now_ms()
redis.call('ZADD', P .. 'procs', now, ARGV[2])
local renewed = 0
for j = 4, #ARGV do
  if redis.call('ZSCORE', P .. 'leases', ARGV[j]) then
    redis.call('ZADD', P .. 'leases', now + tonumber(ARGV[3]), ARGV[j])
    renewed = renewed + 1
  end
end
return renewed
"""
)

SEED = (
    PRELUDE
    + """
-- ARGV: P, LOCK, POSITION, TOTAL, PER_HOST, MAX_PAGES, LAST (0/1), [[A, B, HOST, JSON]...]
if redis.call('GET', P .. 'seed:lock') ~= ARGV[2] then return -1 end
local position, total = tonumber(ARGV[3]), tonumber(ARGV[4])
local per_host, max_pages = tonumber(ARGV[5]), tonumber(ARGV[6])
local requests = cjson.decode(ARGV[8])
local n = #requests
local ctx, seen, last = batch(), 0, ARGV[7] == '1'
for k = 0, n - 1 do
  local r = requests[k + 1]
  local added = add(ctx, r[1], r[2], r[3], r[4], max_pages)
  if added == 'seen' then seen = seen + 1
  elseif added == 'full' then
    -- max_pages is reached: the start URLs not drawn are counted, not made.
    redis.call('HINCRBY', P .. 'stats', 'skipped:max_pages', total - position - k)
    last = true
    break
  end
end
queued(ctx, per_host)
if seen > 0 then redis.call('HINCRBY', P .. 'stats', 'skipped:already seen', seen) end
redis.call('SET', P .. 'seed:cursor', position + n)
if last then
  redis.call('SET', P .. 'seeded', '1')
  redis.call('DEL', P .. 'seed:lock')
  wake()
  return 0
end
redis.call('PEXPIRE', P .. 'seed:lock', 10000)
if ctx.new > 0 then wake() end
return 1
"""
)
