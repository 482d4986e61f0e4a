"""The Lua scripts of story placement (``store.stories``): each runs once per item or batch inside
a pipeline, so the many small reads and writes of placement cost one command each."""

from __future__ import annotations

__all__ = ["CANDIDATES", "DETAILS", "PLACE"]

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

# Writes a placed batch in one call, unless another worker wrote, since this one read, what this
# one's items read (optimistic placement: no lock is held while a batch is decided).
# KEYS: the placement count, the placement log, the corrections lease, the story list, one
# frequency hash per language, then per item its document, its story's hash, members (sorted
# set) and sources (set), its band buckets and its term index sorted sets.
# ARGV: the count when the batch read, how many log entries to keep, 1 when each item's read
# keys are given (else a batch read before another worker wrote is sent again with them), items,
# languages, now, TTL, story window, the frequencies' TTL, the frequency field counting stories,
# the log's TTL and the count's;
# per language: stories started, words and how many stories each newly appeared in (joined by
# newlines); per item: the 4-byte hashes of the keys it read and of those it writes, item,
# source, when, bands, terms, new story (1/0), duplicate (1/0), the story's title, url and id,
# how many document fields and values follow its members in its band buckets, then those.
# Returns {'ok', count, each item's story source count}; {'busy', count} while a correction
# runs; {'stale', count} when what was written since cannot be told (read everything again);
# {'unchecked', count} when others wrote and no read keys were given; {'conflict', count,
# index...}: the items (from 0) that read a key written since, to read again; nothing written.
PLACE = """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local read_at, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then return {'busy', seq} end
local n, langs = tonumber(ARGV[4]), tonumber(ARGV[5])
local starts, kstarts, a, k = {}, {}, 13 + 3 * langs, 5 + langs
for i = 1, n do
  starts[i], kstarts[i] = a, k
  local bands, terms = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  a = a + 13 + bands + tonumber(ARGV[a + 12])
  k = k + 4 + bands + terms
end
if seq ~= read_at then
  local behind = seq - read_at
  if behind < 0 or behind > keep then return {'stale', seq} end
  local entries = redis.call('LRANGE', KEYS[2], 0, behind - 1)
  if #entries < behind then return {'stale', seq} end
  for _, entry in ipairs(entries) do
    if entry == '*' then return {'stale', seq} end
  end
  if ARGV[3] ~= '1' then return {'unchecked', seq} end
  local written = {}
  for _, entry in ipairs(entries) do
    for j = 1, #entry, 4 do written[string.sub(entry, j, j + 3)] = true end
  end
  local conflicts = {'conflict', seq}
  for i = 1, n do
    local reads = ARGV[starts[i]]
    for j = 1, #reads, 4 do
      if written[string.sub(reads, j, j + 3)] then
        conflicts[#conflicts + 1] = i - 1
        break
      end
    end
  end
  if #conflicts > 2 then return conflicts end
end
local now, ttl, window = ARGV[6], ARGV[7], ARGV[8]
local out, log = {'ok', seq + 1}, {}
for i = 1, n do
  local a, k = starts[i], kstarts[i]
  local item, source, when = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local bands, terms = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local doc, story, members, sources = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local fields = a + 13 + bands
  redis.call('HSET', doc, unpack(ARGV, fields, fields + tonumber(ARGV[a + 12]) - 1))
  redis.call('EXPIRE', doc, ttl)
  for j = 1, bands do  -- a band's bucket: its member for this item, scored by now
    local bucket = KEYS[k + 3 + j]
    redis.call('ZADD', bucket, now, ARGV[a + 12 + j])
    redis.call('ZREMRANGEBYSCORE', bucket, '-inf', now - ttl)
    redis.call('EXPIRE', bucket, ttl)
  end
  for j = k + 4 + bands, k + 3 + bands + terms do
    redis.call('ZADD', KEYS[j], when, item)
    redis.call('EXPIRE', KEYS[j], window)
  end
  if ARGV[a + 7] == '1' then
    redis.call('HSETNX', story, 'title', ARGV[a + 9])
    redis.call('HSETNX', story, 'url', ARGV[a + 10])
    redis.call('HSETNX', story, 'first_seen', now)
  end
  if ARGV[a + 8] == '1' then redis.call('HINCRBY', story, 'duplicates', 1) end
  redis.call('HSET', story, 'last_seen', now)
  redis.call('HINCRBY', story, 'items', 1)
  redis.call('EXPIRE', story, ttl)
  redis.call('ZADD', members, now, item)
  redis.call('EXPIRE', members, ttl)
  redis.call('SADD', sources, source)
  redis.call('EXPIRE', sources, ttl)
  redis.call('ZADD', KEYS[4], now, ARGV[a + 11])
  out[#out + 1] = redis.call('SCARD', sources)
  log[i] = ARGV[a + 1]
end
for l = 1, langs do  -- what the batch adds to each language's story frequencies (today's hash)
  local today, b = KEYS[4 + l], 10 + 3 * l
  if ARGV[b] ~= '0' then redis.call('HINCRBY', today, ARGV[10], ARGV[b]) end
  local counts = {}
  for count in string.gmatch(ARGV[b + 2], '[^\\n]+') do counts[#counts + 1] = count end
  local w = 0
  for word in string.gmatch(ARGV[b + 1], '[^\\n]+') do
    w = w + 1
    redis.call('HINCRBY', today, word, counts[w])
  end
  redis.call('EXPIRE', today, ARGV[9])
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - ttl)
redis.call('LPUSH', KEYS[2], table.concat(log))
redis.call('LTRIM', KEYS[2], 0, keep - 1)
redis.call('EXPIRE', KEYS[2], ARGV[11])
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[12])
return out
"""
