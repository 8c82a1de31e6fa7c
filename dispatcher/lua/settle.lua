-- Record the outcome of one delivery attempt and release the claim.
-- KEYS     the record and its indexes (lua/_index.lua; no batch index: the record keeps its own),
--          then KEYS[11], when a SENT outcome has a provider message id, the key that finds the
--          record by that id (dispatcher.keys.provider_message); it expires with the record
-- ARGV[1]  owner token   ARGV[2] status: SENT | QUEUED (retry later) | ERROR (final)
-- ARGV[3]  now (ms, or "" for the Redis clock)   ARGV[4] provider   ARGV[5] provider message id   ARGV[6] error class
-- ARGV[7]  1 to count this as an attempt, else 0   ARGV[8] providers that answered ambiguously
-- ARGV[9]  record TTL (s)   ARGV[10] 1 when an ERROR goes to the dead-letter queue, else 0
-- ARGV[11] message id
-- Returns {verdict, attempts}: OK, or SENT (already sent, or DELIVERED, BOUNCED or COMPLAINED
-- since: nothing changes), or STALE (the claim passed to another owner; only a SENT result is
-- still recorded, since the mail went out).
-- Settling again with the owner that settled last returns OK and changes nothing: a retry after
-- a reply lost on the way back is acted on like the first.
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local record = KEYS[1]
local current = redis.call('HMGET', record, 'status', 'owner', 'attempts', 'settled_by')
if not current[2] and current[4] == ARGV[1] then
  return {'OK', current[3] or '0'}
end
if AFTER_SENT[current[1]] then
  return {'SENT', current[3] or '0'}
end
if ARGV[2] ~= 'SENT' and current[2] ~= ARGV[1] then
  return {'STALE', current[3] or '0'}
end
local now, ttl = clock(ARGV[3]), tonumber(ARGV[9])
redis.call('HSET', record, 'status', ARGV[2], 'updated_at', now, 'settled_by', ARGV[1])
redis.call('HDEL', record, 'owner', 'lease_until')
if ARGV[4] ~= '' then redis.call('HSET', record, 'provider', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', record, 'provider_message_id', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', record, 'last_error', ARGV[6]) end
if ARGV[2] == 'SENT' then redis.call('HSET', record, 'sent_at', now) end
if ARGV[10] == '1' then redis.call('HSET', record, 'dead_letter', '1') end
if ARGV[8] ~= '' then
  local seen = redis.call('HGET', record, 'ambiguous_via')
  redis.call('HSET', record, 'ambiguous_via', seen and (seen .. ',' .. ARGV[8]) or ARGV[8])
end
local attempts = current[3] or '0'
if ARGV[7] == '1' then attempts = redis.call('HINCRBY', record, 'attempts', 1) end
reindex(ARGV[11], current[1], ARGV[2], redis.call('HGET', record, 'created_at') or '', now, ttl)
redis.call('EXPIRE', record, ttl)
if KEYS[11] and ARGV[2] == 'SENT' then redis.call('SET', KEYS[11], ARGV[11], 'EX', ttl) end
return {'OK', tostring(attempts)}
