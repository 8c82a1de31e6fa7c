-- Claim one message for sending (status SENDING), unless it is settled, leased to another
-- owner, or addressed to a suppressed recipient.
-- KEYS     the record and its indexes (lua/_index.lua), then KEYS[11] the shard's copy of the
--          suppression list, KEYS[12] the batch index (only when the message has a batch)
-- ARGV[1]  owner token (unique per delivery)   ARGV[2] now (ms, or "" for the Redis clock)   ARGV[3] lease (ms)
-- ARGV[4]  record TTL (s)   ARGV[5] batch id or ""   ARGV[6] created_at (ms) or ""   ARGV[7] message id
-- ARGV[8]  "" or, when a trim of the shard's indexes is due, the seconds until the next one
-- ARGV[9..] the keyed hashes of its recipients (dispatcher.suppression)
-- Returns {verdict, attempts, extra}: verdict SENT | ERROR (settled: delete, never resend),
-- DEAD_LETTER (ERROR, but its dead-letter copy may not exist: extra = the reason; copy it, then
-- delete), BUSY (extra = ms left on the other owner's lease), SUPPRESSED (now ERROR
-- `suppressed`, never sent: delete) or CLAIMED. DELIVERED, BOUNCED and COMPLAINED were SENT.
-- Taking over a claim whose lease lapsed (its worker died or lost touch mid-send) is an
-- ambiguous outcome: the mail may have gone out. It is recorded in ambiguous_via as `unknown`.
-- The record gets its expiry when this creates it (a record the API created has one already);
-- every field changes in one HSET. An owner of "" is none (settle releases a claim so).
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local record = KEYS[1]
local now, ttl = clock(ARGV[2]), tonumber(ARGV[4])
local f = redis.call('HMGET', record, 'status', 'attempts', 'owner', 'lease_until', 'dead_letter',
                     'last_error', 'created_at', 'ix', 'received_at', 'batch_id', 'ambiguous_via')
local status, attempts, owner = f[1], f[2] or '0', f[3] ~= '' and f[3]
if AFTER_SENT[status] then
  return {'SENT', attempts, ''}
end
if status == 'ERROR' then
  if f[5] == '1' then return {'DEAD_LETTER', attempts, f[6] or 'dead-lettered'} end
  return {status, attempts, ''}
end
local lease_until = tonumber(f[4]) or 0
local taken_over = owner and owner ~= ARGV[1]
if taken_over and lease_until > now then
  return {'BUSY', attempts, tostring(lease_until - now)}
end
local suppressed = false
if #ARGV >= 9 then
  for _, found in ipairs(redis.call('SMISMEMBER', KEYS[11], unpack(ARGV, 9))) do
    if found == 1 then suppressed = true end
  end
end
local new, fields = suppressed and 'ERROR' or 'SENDING', {'updated_at', now}
local function put(name, value) local n = #fields; fields[n + 1], fields[n + 2] = name, value end
if suppressed then
  put('status', 'ERROR'); put('last_error', 'suppressed'); put('owner', ''); put('lease_until', '')
else
  put('status', 'SENDING'); put('owner', ARGV[1]); put('lease_until', now + tonumber(ARGV[3]))
  if not f[9] then put('received_at', now) end
  if taken_over then put('ambiguous_via', f[11] and (f[11] .. ',unknown') or 'unknown') end
end
if ARGV[5] ~= '' and not f[10] then put('batch_id', ARGV[5]) end
local created = f[7] or (ARGV[6] ~= '' and ARGV[6]) or ''
if created ~= '' and not f[7] then put('created_at', created) end
local ix = f[8]
if not ix then
  ix = index_time(created, now, ttl)
  put('ix', ix)
  index_new(ARGV[7], ix, ttl, ARGV[5] ~= '' and KEYS[12])
end
redis.call('HSET', record, unpack(fields))
move(ARGV[7], status, new, ix)
if not status then redis.call('EXPIRE', record, ttl) end
if ARGV[8] ~= '' then
  trim_shard(now, ttl, tonumber(ARGV[8]))
  if ARGV[5] ~= '' then trim(KEYS[12], now, ttl, 0) end
end
return {suppressed and 'SUPPRESSED' or 'CLAIMED', attempts, suppressed and 'suppressed' or ''}
