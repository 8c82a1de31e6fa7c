-- Start (or resume) the request behind one Idempotency-Key.
-- KEYS[1]  the key's hash (dispatcher.keys.idempotency)
-- ARGV[1]  request fingerprint (SHA-256 of method, path and body)   ARGV[2] request token
-- ARGV[3]  now (ms or "")   ARGV[4] lease (ms)   ARGV[5] TTL (s), counted from the first request
-- Returns {verdict, a, b}: NEW (first time: go on), RESUME (an earlier request with this key
-- failed or died: go on, enqueueing only what is still PENDING), MISMATCH (another body),
-- BUSY (a = ms left on the running request's lease) or DONE (a = status, b = response body).
local key = KEYS[1]
local now = clock(ARGV[3])
local fields = redis.call('HMGET', key, 'fingerprint', 'state', 'lease_until', 'code', 'body')
if not fields[1] then
  redis.call('HSET', key, 'fingerprint', ARGV[1], 'state', 'running', 'owner', ARGV[2],
             'lease_until', now + tonumber(ARGV[4]))
  redis.call('EXPIRE', key, tonumber(ARGV[5]))
  return {'NEW', '', ''}
end
if fields[1] ~= ARGV[1] then return {'MISMATCH', '', ''} end
if fields[2] == 'done' then return {'DONE', fields[4], fields[5]} end
local left = tonumber(fields[3] or '0') - now
if fields[2] == 'running' and left > 0 then return {'BUSY', tostring(left), ''} end
redis.call('HSET', key, 'state', 'running', 'owner', ARGV[2], 'lease_until', now + tonumber(ARGV[4]))
return {'RESUME', '', ''}
