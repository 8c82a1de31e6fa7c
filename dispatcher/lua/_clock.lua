-- Prepended to every script by dispatcher.scripts (Lua in Redis has no includes).
-- clock(arg): the caller's `now` in ms when given (tests and the simulator drive virtual time),
-- else the Redis clock.
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
