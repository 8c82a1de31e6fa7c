-- Read every provider's health in one call, first making the transitions time alone causes:
-- open -> half_open once open_until has passed (new generation, no permits), expired probe
-- permits reclaimed, and the trip count reset after healthy_reset of closed health.
-- KEYS     per provider i: KEYS[4i-3] window, KEYS[4i-2] state, KEYS[4i-1] permits, KEYS[4i] rate
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] bucket (ms)   ARGV[3] buckets per window
-- ARGV[4..] per provider, 3 each: healthy reset (ms), rate interval (ms; 0 = unlimited), burst
-- Returns {now, then per provider 28 values}: state, gen, trips, open_until, throttle_until,
-- closed_at, last_seen, ewma, permits in use, rate tokens free now ("" when unlimited), then the
-- window sums calls, successes, failures, throttled, slow, latency sum (ms), h0..h11.
-- Times are ms; a missing value is "".
local now = clock(ARGV[1])
local oldest = math.floor(now / tonumber(ARGV[2])) - tonumber(ARGV[3]) + 1
local columns = {c = 1, s = 2, f = 3, t = 4, w = 5, l = 6}  -- the stats, not the verdict C F W
for n = 0, 11 do columns['h' .. n] = 7 + n end
local out = {now}
for i = 1, #KEYS / 4 do
  local win, state, permits, rate = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local reset, interval, burst = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2]),
                                 tonumber(ARGV[3 * i + 3])
  local s = redis.call('HMGET', state, 'state', 'open_until', 'closed_at', 'trips')
  if s[1] == 'open' and now >= tonumber(s[2]) then
    redis.call('HSET', state, 'state', 'half_open', 'half_ok', 0)
    redis.call('HINCRBY', state, 'gen', 1)
    redis.call('DEL', permits)
  elseif s[1] == 'closed' and tonumber(s[4] or 0) > 0 and now - tonumber(s[3]) >= reset then
    redis.call('HSET', state, 'trips', 0)
  end
  redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
  local f = redis.call('HMGET', state, 'state', 'gen', 'trips', 'open_until', 'throttle_until',
                       'closed_at', 'last_seen', 'ewma')
  local tokens = ''
  if interval > 0 then
    local backlog = math.max(0, tonumber(redis.call('GET', rate) or 0) - now)
    tokens = tostring(math.max(0, burst - backlog / interval))
  end
  out[#out + 1] = f[1] or 'closed'
  for k = 2, 8 do out[#out + 1] = f[k] or '' end
  out[#out + 1] = redis.call('ZCARD', permits)
  out[#out + 1] = tokens
  local sums = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
  local flat = redis.call('HGETALL', win)
  for j = 1, #flat, 2 do
    local b, counter = string.match(flat[j], '^(%d+):(%w+)$')
    local k = columns[counter]
    if k and tonumber(b) >= oldest then sums[k] = sums[k] + tonumber(flat[j + 1]) end
  end
  for k = 1, 18 do out[#out + 1] = sums[k] end
end
return out
