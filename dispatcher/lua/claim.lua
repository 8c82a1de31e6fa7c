-- Claim messages for sending (status SENDING), each unless it is settled, leased to another
-- owner, or addressed to a suppressed recipient; record the provider it is about to be sent to.
-- One call claims every message of a batch that the caller groups together (on Redis Cluster,
-- those of one shard: one slot).
-- KEYS     per message, in order: its record and indexes (lua/_index.lua), then the shard's copy
--          of the suppression list, then its batch index (only when it has a batch)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] lease (ms)   ARGV[3] record TTL (s)
-- ARGV[4]  dispatch.on_ambiguous (retry_same | fail_over | error)
-- then per message: owner token (unique per delivery), batch id or "", created_at (ms) or "",
--   message id, "" or (when a trim of the shard's indexes is due) the seconds until the next,
--   the planned first choice or "", R, then the R keyed hashes of its recipients
--   (dispatcher.suppression)
-- Returns per message {verdict, attempts, extra}: verdict SENT | ERROR (settled: delete, never
-- resend), DEAD_LETTER (ERROR, but its dead-letter copy may not exist: extra = the reason; copy
-- it, then delete), BUSY (extra = ms left on the other owner's lease), SUPPRESSED (now ERROR
-- `suppressed`, never sent: delete), CLAIMED (extra = the provider it must go to, or ""), or
-- FAILED (extra = an error about this record's data: it alone is not claimed). DELIVERED,
-- BOUNCED and COMPLAINED were SENT.
-- A claim records `via`, the provider about to be called, before any call: taking over a claim
-- whose lease lapsed (its worker died or lost touch mid-send) is an ambiguous outcome via that
-- provider (`unknown` when none was recorded), appended to ambiguous_via. After an ambiguous
-- outcome, `retry_same` sends only to the last provider in ambiguous_via, and `error` records
-- ERROR to the dead-letter queue here (an ambiguous answer itself is settled so by the worker).
-- The record gets its expiry when this creates it (a record the API created has one already);
-- every field changes in one HSET. An owner of "" is none (settle releases a claim so).
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local now, lease, ttl = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local on_ambiguous = ARGV[4]

-- The providers a claim's record names as ambiguous (ambiguous_via, with the lapsed claim's
-- `via` appended when it is taken over) and the last of them.
local function ambiguity(f, taken_over)
  local seen = f[11]
  if taken_over then
    local lost = (f[12] and f[12] ~= '') and f[12] or 'unknown'
    seen = seen and (seen .. ',' .. lost) or lost
  end
  return seen, seen and string.match(seen, '([^,]+)$')
end

-- m: owner, batch (id or ""), created, id, trim, first (planned provider or ""), hashes
local function claim(K, m)
  local f = redis.call('HMGET', K[1], 'status', 'attempts', 'owner', 'lease_until',
                       'dead_letter', 'last_error', 'created_at', 'ix', 'received_at', 'batch_id',
                       'ambiguous_via', 'via')
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
  local seen, last = ambiguity(f, taken_over)
  if taken_over then put('ambiguous_via', seen) end
  local refused = nil  -- the reason, when ambiguity under `error` ends it here
  if not suppressed and last and on_ambiguous == 'error' then
    refused = 'ambiguous via ' .. last .. ': the send was cut off mid-call'
  end
  local same = ''
  if last and last ~= 'unknown' and on_ambiguous == 'retry_same' then same = last end
  local next_status = (suppressed or refused) and 'ERROR' or 'SENDING'
  if suppressed then
    put('status', 'ERROR'); put('last_error', 'suppressed'); put('owner', ''); put('lease_until', '')
  elseif refused then
    put('status', 'ERROR'); put('last_error', refused); put('dead_letter', '1')
    put('owner', ''); put('lease_until', '')
  else
    put('status', 'SENDING'); put('owner', m.owner); put('lease_until', now + lease)
    put('via', same ~= '' and same or m.first)
    if not f[9] then put('received_at', now) end
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
  move(K, m.id, status, next_status, ix)
  if not status then redis.call('EXPIRE', K[1], ttl) end
  if m.trim ~= '' then
    trim_shard(K, now, ttl, tonumber(m.trim))
    if m.batch ~= '' then trim(K[12], now, ttl, 0) end
  end
  if suppressed then return {'SUPPRESSED', attempts, 'suppressed'} end
  if refused then return {'DEAD_LETTER', attempts, refused} end
  return {'CLAIMED', attempts, same}
end

local replies, k, a = {}, 0, 4
while a < #ARGV do
  local r = tonumber(ARGV[a + 7])
  local m = {owner = ARGV[a + 1], batch = ARGV[a + 2], created = ARGV[a + 3], id = ARGV[a + 4],
             trim = ARGV[a + 5], first = ARGV[a + 6], hashes = {unpack(ARGV, a + 8, a + 7 + r)}}
  local n = m.batch ~= '' and 12 or 11
  local ok, reply = pcall(claim, {unpack(KEYS, k + 1, k + n)}, m)
  replies[#replies + 1] = ok and reply or {'FAILED', '0', about_one_record(reply)}
  k, a = k + n, a + 7 + r
end
return replies
