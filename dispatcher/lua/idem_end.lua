-- Finish the request behind one Idempotency-Key: `done` keeps its response for replays,
-- `failed` lets the next request with the key resume at once.
-- KEYS[1]  the key's hash   ARGV[1] request token   ARGV[2] done | failed
-- ARGV[3]  HTTP status   ARGV[4] response body (JSON)
-- Returns 1, or 0 when the request no longer owns the key (its lease lapsed and another took it).
local key = KEYS[1]
if redis.call('HGET', key, 'owner') ~= ARGV[1] then return 0 end
if ARGV[2] == 'done' then
  redis.call('HSET', key, 'state', 'done', 'code', ARGV[3], 'body', ARGV[4])
else
  redis.call('HSET', key, 'state', 'failed')
end
redis.call('HDEL', key, 'owner', 'lease_until')
return 1
