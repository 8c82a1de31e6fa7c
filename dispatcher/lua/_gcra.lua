-- Rate limit rules (GCRA: one theoretical arrival time per provider, in ms, kept as a string),
-- prepended by dispatcher.scripts after _clock.lua. The in-process copy is in
-- dispatcher/health/memory.py.

-- Take up to `want` tokens: as many as fit now, and with a `horizon` (ms), those that fit that
-- long from now, booked in order. Returns the tokens granted and the ms until the next one is
-- free; the last one granted is usable that long minus one interval from now.
local function gcra_take(key, now, want, interval, burst, horizon)
  local tat = math.max(now, tonumber(redis.call('GET', key) or 0))
  local fits = math.floor(burst + horizon / interval - (tat - now) / interval + 1e-6)
  local granted = math.max(0, math.min(want, fits))
  tat = tat + granted * interval
  if granted > 0 then
    redis.call('SET', key, string.format('%.17g', tat), 'PX', math.ceil(tat - now) + 1000)
  end
  return granted, math.max(0, tat + interval - burst * interval - now)
end

-- The tokens free now (fractional).
local function gcra_free(key, now, interval, burst)
  local backlog = math.max(0, tonumber(redis.call('GET', key) or 0) - now)
  return math.max(0, burst - backlog / interval)
end
