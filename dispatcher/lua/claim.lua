-- Claim messages for sending (status SENDING), each unless it is settled, leased to another
-- owner, or addressed to a suppressed recipient. One call claims every message of a batch that
-- the caller groups together (on Redis Cluster, those of one shard: one slot).
-- KEYS     per message, in order: its record and indexes (lua/_index.lua), then the shard's copy
--          of the suppression list, then its batch index (only when it has a batch)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] lease (ms)   ARGV[3] record TTL (s)
-- then per message: owner token (unique per delivery), batch id or "", created_at (ms) or "",
--   message id, "" or (when a trim of the shard's indexes is due) the seconds until the next,
--   R, then the R keyed hashes of its recipients (dispatcher.suppression)
-- Returns per message {verdict, attempts, extra}: verdict SENT | ERROR (settled: delete, never
-- resend), DEAD_LETTER (ERROR, but its dead-letter copy may not exist: extra = the reason; copy
-- it, then delete), BUSY (extra = ms left on the other owner's lease), SUPPRESSED (now ERROR
-- `suppressed`, never sent: delete), CLAIMED, or FAILED (extra = an error about this record's
-- data: it alone is not claimed). DELIVERED, BOUNCED and COMPLAINED were SENT.
-- Taking over a claim whose lease lapsed (its worker died or lost touch mid-send) is an
-- ambiguous outcome: the mail may have gone out. It is recorded in ambiguous_via as `unknown`.
-- The record gets its expiry when this creates it (a record the API created has one already);
-- every field changes in one HSET. An owner of "" is none (settle releases a claim so).
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local now, lease, ttl = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

-- m: owner, batch (id or ""), created, id, trim, hashes
local function claim(K, m)
  local f = redis.call('HMGET', K[1], 'status', 'attempts', 'owner', 'lease_until',
                       'dead_letter', 'last_error', 'created_at', 'ix', 'received_at', 'batch_id',
                       'ambiguous_via')
  local status, attempts, owner = f[1], f[2] or '0', f[3] ~= '' and f[3]
  if AFTER_SENT[status] then return {'SENT', attempts, ''} end
  if status == 'ERROR' then
    if f[5] == '1' then return {'DEAD_LETTER', attempts, f[6] or 'dead-lettered'} end
    return {status, attempts, ''}
  end
  local lease_until = tonumber(f[4]) or 0
  local taken_over = owner and owner ~= m.owner
  if taken_over and lease_until > now then
    return {'BUSY', attempts, tostring(lease_until - now)}
  end
  local suppressed = false
  if #m.hashes > 0 then
    for _, found in ipairs(redis.call('SMISMEMBER', K[11], unpack(m.hashes))) do
      if found == 1 then suppressed = true end
    end
  end
  local fields = {'updated_at', now}
  local function put(name, value) local n = #fields; fields[n + 1], fields[n + 2] = name, value end
  if suppressed then
    put('status', 'ERROR'); put('last_error', 'suppressed'); put('owner', ''); put('lease_until', '')
  else
    put('status', 'SENDING'); put('owner', m.owner); put('lease_until', now + lease)
    if not f[9] then put('received_at', now) end
    if taken_over then put('ambiguous_via', f[11] and (f[11] .. ',unknown') or 'unknown') end
  end
  if m.batch ~= '' and not f[10] then put('batch_id', m.batch) end
  local created = f[7] or m.created
  if created ~= '' and not f[7] then put('created_at', created) end
  local ix = f[8]
  if not ix then
    ix = index_time(created, now, ttl)
    put('ix', ix)
    index_new(K, m.id, ix, ttl, m.batch ~= '' and K[12])
  end
  redis.call('HSET', K[1], unpack(fields))
  move(K, m.id, status, suppressed and 'ERROR' or 'SENDING', ix)
  if not status then redis.call('EXPIRE', K[1], ttl) end
  if m.trim ~= '' then
    trim_shard(K, now, ttl, tonumber(m.trim))
    if m.batch ~= '' then trim(K[12], now, ttl, 0) end
  end
  if suppressed then return {'SUPPRESSED', attempts, 'suppressed'} end
  return {'CLAIMED', attempts, ''}
end

local replies, k, a = {}, 0, 3
while a < #ARGV do
  local r = tonumber(ARGV[a + 6])
  local m = {owner = ARGV[a + 1], batch = ARGV[a + 2], created = ARGV[a + 3], id = ARGV[a + 4],
             trim = ARGV[a + 5], hashes = {unpack(ARGV, a + 7, a + 6 + r)}}
  local n = m.batch ~= '' and 12 or 11
  local ok, reply = pcall(claim, {unpack(KEYS, k + 1, k + n)}, m)
  replies[#replies + 1] = ok and reply or {'FAILED', '0', about_one_record(reply)}
  k, a = k + n, a + 6 + r
end
return replies
