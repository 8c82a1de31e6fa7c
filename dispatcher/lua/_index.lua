-- Prepended to the scripts that change a status (dispatcher.keys draws the layout).
-- KEYS[1] the record   KEYS[2] the shard's `all` index   KEYS[3..10] its index per status
-- (PENDING, QUEUED, SENDING, SENT, ERROR, DELIVERED, BOUNCED, COMPLAINED); each script names
-- the keys it takes after these (the batch index, when the message has a batch, among them).
-- Scores are the record's index time `ix` (ms). Every index written is trimmed of members
-- older than the retention and kept alive for it, so nothing grows without bound.
local STATUS_KEY = {PENDING = 3, QUEUED = 4, SENDING = 5, SENT = 6, ERROR = 7,
                    DELIVERED = 8, BOUNCED = 9, COMPLAINED = 10}

local function trim(key, now, ttl)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - ttl * 1000))
  redis.call('EXPIRE', key, ttl)
end

-- The index time of a record seen for the first time: its created_at (ms, or '' for none),
-- clamped into [now - retention, now] so that a trim never keeps it past the retention.
local function index_time(created, now, ttl)
  local t = tonumber(created) or now
  return math.max(now - ttl * 1000, math.min(now, t))
end

-- Move `id` from the index of status `old` (false for a new record) into that of `new`.
-- A new record (no `ix` yet) also joins `all` and, when `batch` (a key) is given, its batch.
local function reindex(id, old, new, created, now, ttl, batch)
  local ix = redis.call('HGET', KEYS[1], 'ix')
  if not ix then
    ix = index_time(created, now, ttl)
    redis.call('HSET', KEYS[1], 'ix', ix)
    redis.call('ZADD', KEYS[2], ix, id)
    trim(KEYS[2], now, ttl)
    if batch then
      redis.call('ZADD', batch, ix, id)
      trim(batch, now, ttl)
    end
  end
  if old == new then return end
  if old and STATUS_KEY[old] then
    redis.call('ZREM', KEYS[STATUS_KEY[old]], id)
  end
  redis.call('ZADD', KEYS[STATUS_KEY[new]], ix, id)
  trim(KEYS[STATUS_KEY[new]], now, ttl)
end
