-- Grant half-open probe permits (`grant_permits` in _breaker.lua): at most `max` live at once
-- across every replica. Makes the open -> half_open transition first when open_until has passed.
-- KEYS     per provider i: KEYS[2i-1] state (hash), KEYS[2i] permits (zset: token -> expiry ms)
-- ARGV[1]  now (ms, or "" for the Redis clock)
-- ARGV[2..] per provider, 3 each: permits wanted, most permits live at once, lease (ms)
-- Returns per provider {state, gen, token...}: tokens only in half_open, as many as were free.
local now = clock(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
  local phase, gen, tokens = grant_permits(KEYS[2 * i - 1], KEYS[2 * i], now,
    tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]))
  local reply = {phase, gen}
  for _, token in ipairs(tokens) do reply[#reply + 1] = token end
  out[i] = reply
end
return out
