-- Claim one message for sending, unless it is already settled or leased to another owner.
-- KEYS[1]  the message record (hash)
-- ARGV[1]  owner token (unique per delivery)   ARGV[2] now (ms, or "" for the Redis clock)   ARGV[3] lease (ms)
-- ARGV[4]  record TTL (s)   ARGV[5] batch id or ""   ARGV[6] created_at (ms) or ""
-- Returns {verdict, attempts, extra}: verdict SENT | ERROR (settled: delete, never resend),
-- BUSY (extra = ms left on the other owner's lease) or CLAIMED.
local record = KEYS[1]
local now = clock(ARGV[2])
local fields = redis.call('HMGET', record, 'status', 'attempts', 'owner', 'lease_until')
local status, attempts = fields[1], fields[2] or '0'
if status == 'SENT' or status == 'ERROR' then
  return {status, attempts, ''}
end
local lease_until = tonumber(fields[4] or '0')
if fields[3] and fields[3] ~= ARGV[1] and lease_until > now then
  return {'BUSY', attempts, tostring(lease_until - now)}
end
redis.call('HSET', record, 'status', 'PENDING', 'owner', ARGV[1],
           'lease_until', now + tonumber(ARGV[3]), 'updated_at', now)
redis.call('HSETNX', record, 'received_at', now)
if ARGV[5] ~= '' then redis.call('HSETNX', record, 'batch_id', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSETNX', record, 'created_at', ARGV[6]) end
redis.call('EXPIRE', record, tonumber(ARGV[4]))
return {'CLAIMED', attempts, ''}
