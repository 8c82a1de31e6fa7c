-- Breaker rules shared by the health scripts, prepended by dispatcher.scripts after _clock.lua.
-- The in-process copy of each rule is in dispatcher/health/memory.py.

-- open -> half_open once open_until has passed: a new generation, no probe successes yet and
-- no permits. Returns the phase after it (closed | open | half_open).
local function half_open_if_due(state, permits, now)
  local s = redis.call('HMGET', state, 'state', 'open_until')
  local phase = s[1] or 'closed'
  if phase == 'open' and now >= tonumber(s[2]) then
    phase = 'half_open'
    redis.call('HSET', state, 'state', phase, 'half_ok', 0)
    redis.call('HINCRBY', state, 'gen', 1)
    redis.call('DEL', permits)
  end
  return phase
end

-- The trip count starts over once the breaker has been closed for `reset` ms.
local function trips_reset(phase, closed_at, now, reset)
  return phase == 'closed' and closed_at and now - tonumber(closed_at) >= reset
end

-- Half-open probe permits, at most `most` live at once: each a lease of `lease` ms (a permit
-- never released is reclaimed when it expires). Returns phase, gen and the tokens granted.
local function grant_permits(state, permits, now, want, most, lease)
  local phase = half_open_if_due(state, permits, now)
  local gen = redis.call('HGET', state, 'gen') or '0'
  local tokens = {}
  if phase == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
    for _ = 1, math.min(want, most - redis.call('ZCARD', permits)) do
      local token = gen .. '.' .. redis.call('HINCRBY', state, 'permit_seq', 1)
      redis.call('ZADD', permits, now + lease, token)
      tokens[#tokens + 1] = token
    end
    redis.call('PEXPIRE', permits, lease)
  end
  return phase, gen, tokens
end
