"""The Lua scripts of story placement (``store.stories``): each runs once per item or batch inside
a pipeline, so the many small reads and writes of placement cost one command each."""

from __future__ import annotations

__all__ = ["CANDIDATES", "DETAILS", "REMEMBER"]

# Reads one item's candidates: KEYS are its band buckets (ARGV[1] of them), then its term index
# sorted sets; ARGV[2] is how many items to read per term, ARGV[3] and ARGV[4] the highest and
# lowest score (the story window around the item's time), ARGV[5] the oldest placement time a
# band member may have (the dedup TTL), then per band the prefix of its members in the bucket:
# the items after it share that band.
CANDIDATES = """
local bands, limit, out = tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 1, bands do
  local want, found = ARGV[5 + i], {}
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[5], '+inf')) do
    if string.sub(member, 1, #want) == want then
      found[#found + 1] = string.sub(member, #want + 1)
    end
  end
  out[i] = found
end
for i = bands + 1, #KEYS do
  out[i] = redis.call('ZREVRANGEBYSCORE', KEYS[i], ARGV[3], ARGV[4], 'LIMIT', 0, limit)
end
return out
"""

# What placement needs of earlier items, in one call: KEYS are their documents.
DETAILS = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, 'fingerprint', 'story', 'vector', 'title', 'source', 'when',
                      'embedding')
end
return out
"""

# Remembers one placed item in one call. KEYS: its document, its story's hash, members (sorted
# set) and sources (set), the story list, then its band buckets and its term index sorted sets.
# ARGV: item, source, now, TTL, story window, when, bands, terms, new story (1/0), duplicate
# (1/0), the story's title, url and id, its member in each band bucket, then the document's
# fields and values. Returns how many sources the story has.
REMEMBER = """
local item, source, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local window, when, bands, terms = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local doc, story, members, sources, stories = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
redis.call('HSET', doc, unpack(ARGV, 14 + bands))
redis.call('EXPIRE', doc, ttl)
for i = 6, 5 + bands do  -- a band's bucket: its member for this item, scored by now
  redis.call('ZADD', KEYS[i], now, ARGV[8 + i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - ttl)
  redis.call('EXPIRE', KEYS[i], ttl)
end
for i = 6 + bands, 5 + bands + terms do
  redis.call('ZADD', KEYS[i], when, item)
  redis.call('EXPIRE', KEYS[i], window)
end
if ARGV[9] == '1' then
  redis.call('HSETNX', story, 'title', ARGV[11])
  redis.call('HSETNX', story, 'url', ARGV[12])
  redis.call('HSETNX', story, 'first_seen', now)
end
if ARGV[10] == '1' then redis.call('HINCRBY', story, 'duplicates', 1) end
redis.call('HSET', story, 'last_seen', now)
redis.call('HINCRBY', story, 'items', 1)
redis.call('EXPIRE', story, ttl)
redis.call('ZADD', members, now, item)
redis.call('EXPIRE', members, ttl)
redis.call('SADD', sources, source)
redis.call('EXPIRE', sources, ttl)
redis.call('ZADD', stories, now, ARGV[13])
return redis.call('SCARD', sources)
"""
