-- Claim one message for sending (status SENDING), unless it is settled, leased to another
-- owner, or addressed to a suppressed recipient; record the provider it is about to be sent to.
-- KEYS     the record and its indexes (lua/_index.lua), then KEYS[11] the shard's copy of the
--          suppression list, KEYS[12] the batch index (only when the message has a batch)
-- ARGV[1]  owner token (unique per delivery)   ARGV[2] now (ms, or "" for the Redis clock)   ARGV[3] lease (ms)
-- ARGV[4]  record TTL (s)   ARGV[5] batch id or ""   ARGV[6] created_at (ms) or ""   ARGV[7] message id
-- ARGV[8]  the planned first choice, or ""   ARGV[9] dispatch.on_ambiguous
-- ARGV[10..] the keyed hashes of its recipients (dispatcher.suppression)
-- Returns {verdict, attempts, extra}: verdict SENT | ERROR (settled: delete, never resend),
-- DEAD_LETTER (ERROR, but its dead-letter copy may not exist: extra = the reason; copy it, then
-- delete), BUSY (extra = ms left on the other owner's lease), SUPPRESSED (now ERROR
-- `suppressed`, never sent: delete) or CLAIMED (extra = the provider it must go to, or "").
-- DELIVERED, BOUNCED and COMPLAINED were SENT.
-- A claim records `via`, the provider about to be called, before any call: taking over a claim
-- whose lease lapsed (its worker died or lost touch mid-send) is an ambiguous outcome via that
-- provider (`unknown` when none was recorded), appended to ambiguous_via. After an ambiguous
-- outcome, `retry_same` sends only to the last provider in ambiguous_via, and `error` records
-- ERROR to the dead-letter queue here (an ambiguous answer itself is settled so by the worker).
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local record = KEYS[1]
local now, ttl = clock(ARGV[2]), tonumber(ARGV[4])
local fields = redis.call('HMGET', record, 'status', 'attempts', 'owner', 'lease_until',
                          'dead_letter', 'last_error', 'via', 'ambiguous_via')
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
for i = 10, #ARGV do
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
local seen = fields[8]
if taken_over then
  local lost = fields[7] or 'unknown'
  seen = seen and (seen .. ',' .. lost) or lost
  redis.call('HSET', record, 'ambiguous_via', seen)
end
local last = seen and string.match(seen, '([^,]+)$')
if last and ARGV[9] == 'error' then
  local reason = 'ambiguous via ' .. last .. ': the send was cut off mid-call'
  redis.call('HSET', record, 'status', 'ERROR', 'last_error', reason, 'dead_letter', '1',
             'updated_at', now)
  redis.call('HDEL', record, 'owner', 'lease_until')
  reindex(ARGV[7], status, 'ERROR', redis.call('HGET', record, 'created_at') or '', now, ttl, batch)
  redis.call('EXPIRE', record, ttl)
  return {'DEAD_LETTER', attempts, reason}
end
local same = ''
if last and last ~= 'unknown' and ARGV[9] == 'retry_same' then same = last end
local via = same ~= '' and same or ARGV[8]
redis.call('HSET', record, 'status', 'SENDING', 'owner', ARGV[1],
           'lease_until', now + tonumber(ARGV[3]), 'updated_at', now)
if via ~= '' then redis.call('HSET', record, 'via', via) else redis.call('HDEL', record, 'via') end
redis.call('HSETNX', record, 'received_at', now)
if ARGV[5] ~= '' then redis.call('HSETNX', record, 'batch_id', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSETNX', record, 'created_at', ARGV[6]) end
reindex(ARGV[7], status, 'SENDING', redis.call('HGET', record, 'created_at') or '', now, ttl, batch)
redis.call('EXPIRE', record, ttl)
return {'CLAIMED', attempts, same}
