-- Take up to N tokens from each provider's rate limit, shared by every replica (`gcra_take` in
-- _gcra.lua). Grants as many as fit now, never more than wanted; with a horizon, also tokens
-- that fit within that many ms from now, booked in order: the caller waits for each of those.
-- KEYS     per provider i: KEYS[i] the theoretical arrival time (ms, a string)
-- ARGV[1]  now (ms, or "" for the Redis clock)
-- ARGV[2..] per provider, 4 each: tokens wanted, emission interval (ms), burst (tokens),
--          horizon (ms; 0 = only tokens free now)
-- Returns per provider {granted, ms until the next token is free (string)}. The last granted
-- token is usable that ms minus one interval from now, each earlier one an interval before.
local now = clock(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local granted, wait = gcra_take(KEYS[i], now, tonumber(ARGV[4 * i - 2]),
    tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i]), tonumber(ARGV[4 * i + 1]))
  out[i] = {granted, tostring(wait)}
end
return out
