-- Claim one message for sending (status SENDING), unless it is settled, leased to another
-- owner, or addressed to a suppressed recipient.
-- KEYS     the record and its indexes (lua/_index.lua), then KEYS[11] the shard's copy of the
--          suppression list, KEYS[12] the batch index (only when the message has a batch)
-- ARGV[1]  owner token (unique per delivery)   ARGV[2] now (ms, or "" for the Redis clock)   ARGV[3] lease (ms)
-- ARGV[4]  record TTL (s)   ARGV[5] batch id or ""   ARGV[6] created_at (ms) or ""   ARGV[7] message id
-- ARGV[8..] the keyed hashes of its recipients (dispatcher.suppression)
-- Returns {verdict, attempts, extra}: verdict SENT | ERROR (settled: delete, never resend),
-- DEAD_LETTER (ERROR, but its dead-letter copy may not exist: extra = the reason; copy it, then
-- delete), BUSY (extra = ms left on the other owner's lease), SUPPRESSED (now ERROR
-- `suppressed`, never sent: delete) or CLAIMED. DELIVERED, BOUNCED and COMPLAINED were SENT.
-- Taking over a claim whose lease lapsed (its worker died or lost touch mid-send) is an
-- ambiguous outcome: the mail may have gone out. It is recorded in ambiguous_via as `unknown`.
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local record = KEYS[1]
local now, ttl = clock(ARGV[2]), tonumber(ARGV[4])
local fields = redis.call('HMGET', record, 'status', 'attempts', 'owner', 'lease_until',
                          'dead_letter', 'last_error')
local status, attempts = fields[1], fields[2] or '0'
if AFTER_SENT[status] then
  return {'SENT', attempts, ''}
end
if status == 'ERROR' then
  if fields[5] == '1' then return {'DEAD_LETTER', attempts, fields[6] or 'dead-lettered'} end
  return {status, attempts, ''}
end
local lease_until = tonumber(fields[4] or '0')
local taken_over = fields[3] and fields[3] ~= ARGV[1]
if taken_over and lease_until > now then
  return {'BUSY', attempts, tostring(lease_until - now)}
end
local batch = nil
if ARGV[5] ~= '' then batch = KEYS[12] end
local suppressed = false
for i = 8, #ARGV do
  if redis.call('SISMEMBER', KEYS[11], ARGV[i]) == 1 then suppressed = true end
end
if suppressed then
  redis.call('HSET', record, 'status', 'ERROR', 'last_error', 'suppressed', 'updated_at', now)
  redis.call('HDEL', record, 'owner', 'lease_until')
  if ARGV[5] ~= '' then redis.call('HSETNX', record, 'batch_id', ARGV[5]) end
  if ARGV[6] ~= '' then redis.call('HSETNX', record, 'created_at', ARGV[6]) end
  reindex(ARGV[7], status, 'ERROR', redis.call('HGET', record, 'created_at') or '', now, ttl, batch)
  redis.call('EXPIRE', record, ttl)
  return {'SUPPRESSED', attempts, 'suppressed'}
end
if taken_over then
  local seen = redis.call('HGET', record, 'ambiguous_via')
  redis.call('HSET', record, 'ambiguous_via', seen and (seen .. ',unknown') or 'unknown')
end
redis.call('HSET', record, 'status', 'SENDING', 'owner', ARGV[1],
           'lease_until', now + tonumber(ARGV[3]), 'updated_at', now)
redis.call('HSETNX', record, 'received_at', now)
if ARGV[5] ~= '' then redis.call('HSETNX', record, 'batch_id', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSETNX', record, 'created_at', ARGV[6]) end
reindex(ARGV[7], status, 'SENDING', redis.call('HGET', record, 'created_at') or '', now, ttl, batch)
redis.call('EXPIRE', record, ttl)
return {'CLAIMED', attempts, ''}
