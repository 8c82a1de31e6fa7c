-- Grant half-open probe permits: at most `max` live at once across every replica. A permit is a
-- lease, so one never released (a crashed or cancelled probe) is reclaimed when it expires.
-- Makes the open -> half_open transition first when open_until has passed.
-- KEYS     per provider i: KEYS[2i-1] state (hash), KEYS[2i] permits (zset: token -> expiry ms)
-- ARGV[1]  now (ms, or "" for the Redis clock)
-- ARGV[2..] per provider, 3 each: permits wanted, most permits live at once, lease (ms)
-- Returns per provider {state, gen, token...}: tokens only in half_open, as many as were free.
local now = clock(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
  local state, permits = KEYS[2 * i - 1], KEYS[2 * i]
  local want, most = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local lease = tonumber(ARGV[3 * i + 1])
  local s = redis.call('HMGET', state, 'state', 'open_until')
  local phase = s[1] or 'closed'
  if phase == 'open' and now >= tonumber(s[2]) then
    phase = 'half_open'
    redis.call('HSET', state, 'state', phase, 'half_ok', 0)
    redis.call('HINCRBY', state, 'gen', 1)
    redis.call('DEL', permits)
  end
  local gen = redis.call('HGET', state, 'gen') or '0'
  local reply = {phase, gen}
  if phase == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
    for _ = 1, math.min(want, most - redis.call('ZCARD', permits)) do
      local token = gen .. '.' .. redis.call('HINCRBY', state, 'permit_seq', 1)
      redis.call('ZADD', permits, now + lease, token)
      reply[#reply + 1] = token
    end
    redis.call('PEXPIRE', permits, lease)
  end
  out[i] = reply
end
return out
