-- Prepended to the scripts that change a status (dispatcher.keys draws the layout).
-- A record's keys `K` (KEYS itself for a one-message script, a slice of it in claim and settle):
-- K[1] the record   K[2] the shard's `all` index   K[3..10] its index per status
-- (PENDING, QUEUED, SENDING, SENT, ERROR, DELIVERED, BOUNCED, COMPLAINED); each script names
-- the keys it takes after these (the batch index, when the message has a batch, among them).
-- Scores are the record's index time `ix` (ms). An id joins `all` once and stays there; a status
-- change moves it from one status index to the next. Members older than the retention are
-- trimmed, and the indexes kept alive: by the scripts off the worker's path on each index they
-- write (`reindex`), and by claim and settle for the whole shard (`trim_shard`) when their
-- caller says it is due (dispatcher.ledger: once per shard and interval), so nothing grows
-- without bound.
local STATUS_KEY = {PENDING = 3, QUEUED = 4, SENDING = 5, SENT = 6, ERROR = 7,
                    DELIVERED = 8, BOUNCED = 9, COMPLAINED = 10}

-- Drop the members of `key` older than the retention; the key lives `ttl + slack` seconds more.
local function trim(key, now, ttl, slack)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - ttl * 1000))
  redis.call('EXPIRE', key, ttl + slack)
end

-- Trim `all` and every status index of the record's shard (an EXPIRE on a missing key is a
-- no-op). `slack`: the seconds until the next trim is due, so a live key never expires early.
local function trim_shard(K, now, ttl, slack)
  for k = 2, 10 do trim(K[k], now, ttl, slack) end
end

-- The index time of a record seen for the first time: its created_at (ms, or '' for none),
-- clamped into [now - retention, now] so that a trim never keeps it past the retention.
local function index_time(created, now, ttl)
  local t = tonumber(created) or now
  return math.max(now - ttl * 1000, math.min(now, t))
end

-- A record indexed for the first time, at `ix`: it joins `all` and, when `batch` (a key) is
-- given, its batch index, whose key lives the retention past its newest member.
local function index_new(K, id, ix, ttl, batch)
  redis.call('ZADD', K[2], ix, id)
  if batch then
    redis.call('ZADD', batch, ix, id)
    redis.call('EXPIRE', batch, ttl)
  end
end

-- Move `id` (index time `ix`) from the index of status `old` (false for none) into `new`'s.
local function move(K, id, old, new, ix)
  if old == new then return end
  if old and STATUS_KEY[old] then
    redis.call('ZREM', K[STATUS_KEY[old]], id)
  end
  redis.call('ZADD', K[STATUS_KEY[new]], ix, id)
end

-- The text of an error about one record's data (WRONGTYPE, or a script error on a value), for
-- a script that settles many records to fail that one alone; any other error (Redis cannot
-- serve: OOM, READONLY, ...) is raised again and fails the whole call.
-- A Redis error, a table or (Redis 7.0) a string, starts with its code in capitals; a script
-- error on a value starts with the script's name.
local function about_one_record(e)
  local text = type(e) == 'table' and (e.err or '') or tostring(e)
  local code = string.match(text, '^%-?(%u+)[%s:]')
  if code and code ~= 'WRONGTYPE' then error(e, 0) end  -- level 0: no position prefix
  return text
end

-- For the scripts off the worker's path: move `id` from `old` to `new`, indexing it first when
-- it has no `ix` yet, and trim each index written.
local function reindex(id, old, new, created, now, ttl, batch)
  local ix = redis.call('HGET', KEYS[1], 'ix')
  if not ix then
    ix = index_time(created, now, ttl)
    redis.call('HSET', KEYS[1], 'ix', ix)
    index_new(KEYS, id, ix, ttl, batch)
    trim(KEYS[2], now, ttl, 0)
    if batch then trim(batch, now, ttl, 0) end
  end
  if old == new then return end
  move(KEYS, id, old, new, ix)
  trim(KEYS[STATUS_KEY[new]], now, ttl, 0)
end
