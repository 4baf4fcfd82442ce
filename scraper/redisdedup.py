"""How a crawl shared through Redis remembers the URLs it has seen: ``set`` or ``bloom``.

A URL is seen as the 64-bit fingerprint of its page kind and canonical URL
(``fingerprint``). The crawl keeps them one of two ways, chosen by the first process
that joins it (``--dedup``; the others follow it) and kept in the key ``dedup``:

- ``set`` (the default): exact. Fingerprints are spread over ``DEDUP_BUCKETS`` Redis
  sets ``seen:BUCKET``, few enough members each to stay compact intsets: about 9 bytes
  of Redis memory a URL, and no URL is ever taken for another.
- ``bloom``: a scalable Bloom filter, ``bloom:0``, ``bloom:1``... (Almeida et al., 2007),
  its state in the hash ``bloom`` (filters, URLs in the newest). Filter I holds
  ``BLOOM_FIRST * 2**I`` URLs at a false-positive rate of ``BLOOM_ERROR / 2**(I + 1)``,
  so a URL never seen is taken for a seen one (and not fetched) with a probability
  under ``BLOOM_ERROR`` however large the crawl grows, up to ``BLOOM_FILTERS`` filters
  (267 million URLs; past them the last filter fills on and the rate rises). About 2.1
  bytes a URL at 1,000,000 URLs, 3.8 at 10,000,000; the first URL costs the first
  filter's 2 MB. Each check costs one BITFIELD call a filter.

The Lua functions here (``LUA``) are part of every script of ``scraper.redislua`` that
queues requests; ``seen(A, B, MARK)`` takes the two arguments ``queue_args`` makes of a
fingerprint for the crawl's way.
"""

from __future__ import annotations

import hashlib

from scraper.frontier import canonical_url
from scraper.models import Request

MODES = ("set", "bloom")
DEDUP_BUCKETS = 1 << 14
"""Sets the fingerprints are spread over: ~61 each at 1,000,000 URLs, and under Redis's
``set-max-intset-entries`` (512) up to about 6,000,000, so each stays a compact intset."""
BLOOM_FIRST = 1 << 20
"""URLs the first Bloom filter holds; each next one holds twice as many."""
BLOOM_ERROR = 0.001
"""Bound on the chance that a URL never seen is dropped as seen, for the whole crawl."""
BLOOM_FILTERS = 8
"""Filters at most: the 9th would pass Redis's largest bit offset (2**32 - 1)."""


def fingerprint(request: Request, first_page: str | None) -> int:
    """The 64-bit fingerprint (signed) of ``request``'s page kind and canonical URL."""
    key = f"{request.page or first_page}\n{canonical_url(request.url)}"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def dedup_member(value: int, buckets: int = DEDUP_BUCKETS) -> tuple[str, str]:
    """The (bucket, set member) a fingerprint is kept as: the bucket from its low bits."""
    return str(value & (buckets - 1)), str(value)


def bloom_hashes(value: int) -> tuple[str, str]:
    """The two 32-bit hashes the Bloom filter's bit positions are made of (the second
    odd, so that no two positions of a URL coincide by it)."""
    unsigned = value & ((1 << 64) - 1)
    return str(unsigned >> 32), str((unsigned & 0xFFFFFFFF) | 1)


def queue_args(value: int, mode: str, buckets: int = DEDUP_BUCKETS) -> tuple[str, str]:
    """The two script arguments of fingerprint ``value`` for the crawl's ``mode``."""
    return bloom_hashes(value) if mode == "bloom" else dedup_member(value, buckets)


LUA = f"""
-- Seen URLs: see scraper.redisdedup. bloom is false (sets) or the filter's state.
local bloom = nil
local BLOOM_FIRST, BLOOM_ERROR, BLOOM_FILTERS = {BLOOM_FIRST}, {BLOOM_ERROR}, {BLOOM_FILTERS}
local function bloom_state()
  if bloom == nil then
    local state = redis.call('HMGET', P .. 'bloom', 'n', 'count')
    bloom = false
    if state[1] then bloom = {{n = tonumber(state[1]), count = tonumber(state[2] or '0')}} end
  end
  return bloom
end
-- Filter I: the URLs it holds, its bits and its bit positions a URL.
local shapes = {{}}
local function bloom_shape(i)
  local shape = shapes[i]
  if not shape then
    local rate = BLOOM_ERROR / 2 ^ (i + 1)
    local capacity = BLOOM_FIRST * 2 ^ i
    local bits = math.ceil(capacity * -math.log(rate) / math.log(2) ^ 2)
    shape = {{capacity, bits, math.ceil(-math.log(rate) / math.log(2))}}
    shapes[i] = shape
  end
  return shape[1], shape[2], shape[3]
end
-- Make filter I, all its bytes at once: grown by its bits, Redis would keep up to 1 MB
-- more than it needs (past 64 MB, 1 MB is little, and it is grown so).
local function bloom_new(i)
  local _, bits = bloom_shape(i)
  local size = math.ceil(bits / 8)
  if size <= 67108864 then redis.call('SET', P .. 'bloom:' .. i, string.rep('\\0', size)) end
end
-- Whether all bits of (H1, H2) were set in filter I (OP 'SET' sets them).
local function bloom_bits(i, h1, h2, op)
  local _, bits, k = bloom_shape(i)
  local args = {{}}
  for j = 0, k - 1 do
    args[#args + 1] = op
    args[#args + 1] = 'u1'
    args[#args + 1] = (h1 + j * h2) % bits
    if op == 'SET' then args[#args + 1] = 1 end
  end
  for _, bit in ipairs(redis.call('BITFIELD', P .. 'bloom:' .. i, unpack(args))) do
    if bit == 0 then return false end
  end
  return true
end
-- Whether the URL (A, B) was seen; MARK: note it as seen from now on.
local function seen(a, b, mark)
  local state = bloom_state()
  if not state then
    if mark then return redis.call('SADD', P .. 'seen:' .. a, b) == 0 end
    return redis.call('SISMEMBER', P .. 'seen:' .. a, b) == 1
  end
  local h1, h2 = tonumber(a), tonumber(b)
  local newest = state.n - 1
  for i = 0, newest - 1 do
    if bloom_bits(i, h1, h2, 'GET') then return true end
  end
  local full = state.count >= bloom_shape(newest) and state.n < BLOOM_FILTERS
  if not mark or full then
    if bloom_bits(newest, h1, h2, 'GET') then return true end
    if not mark then return false end
    newest, state.n, state.count = newest + 1, state.n + 1, 0
    bloom_new(newest)
  end
  if bloom_bits(newest, h1, h2, 'SET') then return true end
  state.count = state.count + 1
  state.dirty = true
  return false
end
-- Write the filter's state back when ``seen`` changed it.
local function seen_saved()
  if bloom and bloom.dirty then
    redis.call('HSET', P .. 'bloom', 'n', bloom.n, 'count', bloom.count)
    bloom.dirty = false
  end
end
"""

CHOOSE = (
    """
local P = ARGV[1]
"""
    + LUA
    + """
-- ARGV: P, MODE ('': the crawl's). The crawl's way of keeping seen URLs: set by the first
-- process that joins; a crawl that queued requests before it was kept (sets) is 'set'.
local mode = redis.call('GET', P .. 'dedup')
if not mode then
  mode = ARGV[2]
  if mode == '' or redis.call('EXISTS', P .. 'admitted') == 1 then mode = 'set' end
  redis.call('SET', P .. 'dedup', mode)
  if mode == 'bloom' then
    redis.call('HSET', P .. 'bloom', 'n', 1, 'count', 0)
    bloom_new(0)
  end
end
return mode
"""
)
