-- Move each provider's circuit breaker on a batch of outcomes and release their probe permits.
-- Queued right after health_record.lua in the same round trip (which prunes and expires keys).
-- KEYS     per provider i: KEYS[3i-2] window (hash), KEYS[3i-1] state (hash), KEYS[3i] permits
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] bucket (ms)   ARGV[3] buckets per window
-- ARGV[4]  open-time jitter j (0.2: +-20 %), then per provider: 11 parameters (1 slow call (ms),
--   2 minimum calls, 3 error rate threshold, 4 slow-call rate threshold, 5 consecutive failures,
--   6 open (ms), 7 longest open (ms), 8 misconfigured open (ms), 9 half-open successes,
--   10 healthy reset (ms), 11 jitter draw 0..1), then K and K permit tokens released, then R
--   and R runs of 4 (dispatcher.health.tally): kind (S ok, D failed, T throttled, M
--   misconfigured), 1 if slow else 0, generation seen when routed, how many in a row
-- State: state (closed | open | half_open), gen, trips, open_until, consec, half_ok, closed_at.
-- Only an outcome of the current generation moves a breaker (fencing); each transition bumps
-- gen. Rates are judged on such outcomes only: window fields "<bucket>:C|F|W" (calls, failed,
-- slow). The state is read once per provider and written once, whatever the batch's size; a run
-- is judged as its outcomes one by one would be. Returns each provider's generation after it.
local now = clock(ARGV[1])
local bucket_ms, buckets, jitter = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local slot = math.floor(now / bucket_ms) .. ':'
local base = {}  -- per provider, the ARGV index before its parameters
local function param(i, n) return tonumber(ARGV[base[i] + n]) end

local function trip(i, st, misconfigured)
  local s = redis.call('HMGET', KEYS[3 * i - 1], 'trips', 'closed_at')
  local trips = tonumber(s[1] or 0) + 1
  if trips_reset(st.phase, s[2], now, param(i, 10)) then trips = 1 end
  local open = param(i, 8)
  if not misconfigured then
    local spread = 1 - jitter + 2 * jitter * param(i, 11)
    open = math.min(param(i, 7), param(i, 6) * 2 ^ (trips - 1) * spread)
  end
  st.phase, st.gen, st.open_until, st.dirty = 'open', st.gen + 1, math.floor(now + open), false
  redis.call('HSET', KEYS[3 * i - 1], 'state', 'open', 'trips', trips, 'open_until',
             st.open_until, 'consec', 0, 'half_ok', 0, 'gen', st.gen)
  redis.call('DEL', KEYS[3 * i])
end

local function close(i, st)
  st.phase, st.gen, st.consec, st.dirty = 'closed', st.gen + 1, 0, false
  st.C, st.F, st.W = 0, 0, 0  -- old failures must not re-trip it at once
  redis.call('HSET', KEYS[3 * i - 1], 'state', 'closed', 'closed_at', now, 'consec', 0,
             'gen', st.gen)
  redis.call('DEL', KEYS[3 * i], KEYS[3 * i - 2])
end

local function rates_trip(i)
  local sums, oldest = {C = 0, F = 0, W = 0}, math.floor(now / bucket_ms) - buckets + 1
  local flat = redis.call('HGETALL', KEYS[3 * i - 2])
  for j = 1, #flat, 2 do
    local b, counter = string.match(flat[j], '^(%d+):([CFW])$')
    if b and tonumber(b) >= oldest then sums[counter] = sums[counter] + tonumber(flat[j + 1]) end
  end
  local calls = sums.C
  return calls >= param(i, 2) and (sums.F >= param(i, 3) * calls or sums.W >= param(i, 4) * calls)
end

-- Judge `n` outcomes in a row of one kind, slowness and generation, on the cached state `st`.
local function judge(i, st, kind, slow, gen, n)
  if kind == 'T' or gen ~= st.gen then return end
  if kind == 'M' and st.phase == 'open' then
    st.open_until, st.dirty = math.floor(math.max(st.open_until, now + param(i, 8))), true
  elseif kind == 'M' then
    trip(i, st, true)
  elseif st.phase == 'half_open' and (kind == 'D' or slow == 1) then
    trip(i, st, false)
  elseif st.phase == 'half_open' then
    if st.half_ok + n >= param(i, 9) then close(i, st) else
      st.half_ok, st.dirty = st.half_ok + n, true
    end
  elseif st.phase == 'closed' then
    st.judged, st.dirty = true, true
    if kind ~= 'D' then
      st.C, st.W, st.consec = st.C + n, st.W + slow * n, 0
      return
    end
    local k = math.min(n, math.max(1, param(i, 5) - st.consec))  -- up to the trip, if any
    st.C, st.F, st.W, st.consec = st.C + k, st.F + k, st.W + slow * k, st.consec + k
    if st.consec >= param(i, 5) then trip(i, st, false) end
  end
end

-- Write what the batch changed: the counters, then the state's fields of its phase.
local function save(i, st)
  for _, counter in ipairs({'C', 'F', 'W'}) do
    if st[counter] > 0 then redis.call('HINCRBY', KEYS[3 * i - 2], slot .. counter, st[counter]) end
  end
  if not st.dirty then return end
  local field = {closed = 'consec', half_open = 'half_ok', open = 'open_until'}
  local value = {closed = st.consec, half_open = st.half_ok, open = st.open_until}
  redis.call('HSET', KEYS[3 * i - 1], field[st.phase], value[st.phase])
end

local generations, at = {}, 4
for i = 1, #KEYS / 3 do
  base[i], at = at, at + 11
  local s = redis.call('HMGET', KEYS[3 * i - 1], 'state', 'gen', 'open_until', 'consec', 'half_ok')
  local st = {phase = s[1] or 'closed', gen = tonumber(s[2] or 0), open_until = tonumber(s[3] or 0),
              consec = tonumber(s[4] or 0), half_ok = tonumber(s[5] or 0), C = 0, F = 0, W = 0}
  local k = tonumber(ARGV[at + 1])
  if k > 0 then redis.call('ZREM', KEYS[3 * i], unpack(ARGV, at + 2, at + 1 + k)) end
  at = at + 1 + k
  for r = 1, tonumber(ARGV[at + 1]) do
    local j = at + 4 * r - 2
    judge(i, st, ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]))
  end
  at = at + 1 + 4 * tonumber(ARGV[at + 1])
  save(i, st)
  if st.judged and st.phase == 'closed' and rates_trip(i) then trip(i, st, false) end
  generations[i] = st.gen
end
return generations
