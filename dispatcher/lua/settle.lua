-- Record the outcome of one delivery attempt and release the claim.
-- KEYS     the record and its indexes (lua/_index.lua; no batch index: the record keeps its own),
--          then KEYS[11], when a SENT outcome has a provider message id, the key that finds the
--          record by that id (dispatcher.keys.provider_message); it expires with the record
-- ARGV[1]  owner token   ARGV[2] status: SENT | QUEUED (retry later) | ERROR (final)
-- ARGV[3]  now (ms, or "" for the Redis clock)   ARGV[4] provider   ARGV[5] provider message id   ARGV[6] error class
-- ARGV[7]  1 to count this as an attempt, else 0   ARGV[8] providers that answered ambiguously
-- ARGV[9]  record TTL (s)   ARGV[10] 1 when an ERROR goes to the dead-letter queue, else 0
-- ARGV[11] message id   ARGV[12] "" or, when a trim of the shard's indexes is due, the seconds
--          until the next one
-- Returns {verdict, attempts}: OK, or SENT (already sent, or DELIVERED, BOUNCED or COMPLAINED
-- since: nothing changes), or STALE (the claim passed to another owner; only a SENT result is
-- still recorded, since the mail went out).
-- Settling again with the owner that settled last returns OK and changes nothing: a retry after
-- a reply lost on the way back is acted on like the first.
-- Every field changes in one HSET; the claim is released by an owner of "" (none). The record
-- keeps the expiry it was given when created.
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local record = KEYS[1]
local current = redis.call('HMGET', record, 'status', 'owner', 'attempts', 'settled_by', 'ix',
                           'created_at', 'ambiguous_via')
local owner, attempts = current[2] ~= '' and current[2], current[3] or '0'
if not owner and current[4] == ARGV[1] then
  return {'OK', attempts}
end
if AFTER_SENT[current[1]] then
  return {'SENT', attempts}
end
if ARGV[2] ~= 'SENT' and owner ~= ARGV[1] then
  return {'STALE', attempts}
end
local now, ttl = clock(ARGV[3]), tonumber(ARGV[9])
local fields = {'status', ARGV[2], 'updated_at', now, 'settled_by', ARGV[1], 'owner', '',
                'lease_until', ''}
local function put(name, value) local n = #fields; fields[n + 1], fields[n + 2] = name, value end
if ARGV[4] ~= '' then put('provider', ARGV[4]) end
if ARGV[5] ~= '' then put('provider_message_id', ARGV[5]) end
if ARGV[6] ~= '' then put('last_error', ARGV[6]) end
if ARGV[2] == 'SENT' then put('sent_at', now) end
if ARGV[10] == '1' then put('dead_letter', '1') end
if ARGV[8] ~= '' then put('ambiguous_via', current[7] and (current[7] .. ',' .. ARGV[8]) or ARGV[8]) end
if ARGV[7] == '1' then attempts = tostring(tonumber(attempts) + 1); put('attempts', attempts) end
local ix = current[5]
if not ix then
  ix = index_time(current[6] or '', now, ttl)
  put('ix', ix)
  index_new(ARGV[11], ix, ttl, false)
end
redis.call('HSET', record, unpack(fields))
move(ARGV[11], current[1], ARGV[2], ix)
if not current[1] then redis.call('EXPIRE', record, ttl) end
if KEYS[11] and ARGV[2] == 'SENT' then redis.call('SET', KEYS[11], ARGV[11], 'EX', ttl) end
if ARGV[12] ~= '' then trim_shard(now, ttl, tonumber(ARGV[12])) end
return {'OK', attempts}
