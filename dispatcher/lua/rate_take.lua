-- Take up to N tokens from each provider's rate limit, shared by every replica (GCRA: one
-- theoretical arrival time per provider). Grants as many as fit now, never more than wanted;
-- with a horizon, also tokens that fit within that many ms from now, booked in order: the
-- caller waits for each of those before using it.
-- KEYS     per provider i: KEYS[i] the theoretical arrival time (ms, a string)
-- ARGV[1]  now (ms, or "" for the Redis clock)
-- ARGV[2..] per provider, 4 each: tokens wanted, emission interval (ms), burst (tokens),
--          horizon (ms; 0 = only tokens free now)
-- Returns per provider {granted, ms until the next token is free (string)}. The last granted
-- token is usable that ms minus one interval from now, each earlier one an interval before.
local now = clock(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local want, interval = tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i - 1])
  local burst, horizon = tonumber(ARGV[4 * i]), tonumber(ARGV[4 * i + 1])
  local tat = math.max(now, tonumber(redis.call('GET', KEYS[i]) or 0))
  local fits = math.floor(burst + horizon / interval - (tat - now) / interval + 1e-6)
  local granted = math.max(0, math.min(want, fits))
  tat = tat + granted * interval
  if granted > 0 then
    redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil(tat - now) + 1000)
  end
  out[i] = {granted, tostring(math.max(0, tat + interval - burst * interval - now))}
end
return out
