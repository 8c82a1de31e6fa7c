-- Reserve what a receive batch's first choices need, in one call: half-open probe permits
-- (`grant_permits`, _breaker.lua), then rate tokens (`gcra_take`, _gcra.lua); a probe's token
-- is taken only once it has its permit.
-- KEYS     per provider i: KEYS[3i-2] state (hash), KEYS[3i-1] permits (zset), KEYS[3i] rate
-- ARGV[1]  now (ms, or "" for the Redis clock)
-- ARGV[2..] per provider, 7 each: 1 wanted, 2 probe (1: half-open as routed, permits first),
--   3 most permits live at once, 4 lease (ms), 5 emission interval (ms; 0 = unlimited),
--   6 burst (tokens), 7 horizon (ms)
-- Returns per provider {tokens granted, ms until the next token is free (string), gen, permit
-- token...}: gen is "" and there are no permits unless probe is 1; an unlimited provider is
-- granted every token wanted.
local now = clock(ARGV[1])
local out = {}
for i = 1, #KEYS / 3 do
  local function arg(n) return tonumber(ARGV[1 + 7 * (i - 1) + n]) end
  local want, reply = arg(1), {0, '0', ''}
  if arg(2) == 1 then
    local _, gen, tokens = grant_permits(KEYS[3 * i - 2], KEYS[3 * i - 1], now, want, arg(3),
                                         arg(4))
    want, reply[3] = #tokens, gen
    for _, token in ipairs(tokens) do reply[#reply + 1] = token end
  end
  if arg(5) > 0 then
    local granted, wait = gcra_take(KEYS[3 * i], now, want, arg(5), arg(6), arg(7))
    reply[1], reply[2] = granted, tostring(wait)
  else
    reply[1] = want
  end
  out[i] = reply
end
return out
