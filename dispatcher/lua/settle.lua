-- Record the outcomes of delivery attempts and release their claims. One call settles every
-- message of a flush that the caller groups together (on Redis Cluster, one shard's: one slot).
-- KEYS     per message, in order: its record and indexes (lua/_index.lua; no batch index: the
--          record keeps its own), then, when a SENT outcome has a provider message id, the key
--          that finds the record by that id (dispatcher.keys.provider_message)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] record TTL (s)
-- then per message, 11 each: 1 owner token, 2 status: SENT | QUEUED (retry later) | ERROR
--   (final), 3 provider, 4 provider message id, 5 error class, 6 1 to count this as an
--   attempt, else 0, 7 providers that answered ambiguously, 8 1 when an ERROR goes to the
--   dead-letter queue, else 0, 9 message id, 10 "" or (when a trim of the shard's indexes is
--   due) the seconds until the next, 11 1 when the provider id key is among its KEYS, else 0
-- Returns per message {verdict, attempts}: OK, or SENT (already sent, or DELIVERED, BOUNCED or
-- COMPLAINED since: nothing changes), or STALE (the claim passed to another owner; only a SENT
-- result is still recorded, since the mail went out), or {FAILED, error} (an error about this
-- record's data: it alone is not recorded).
-- Settling again with the owner that settled last returns OK and changes nothing: a retry after
-- a reply lost on the way back is acted on like the first.
-- Every field changes in one HSET; the claim is released by an owner of "" (none). The record
-- keeps the expiry it was given when created; the provider id key expires `ttl` from now.
local AFTER_SENT = {SENT = true, DELIVERED = true, BOUNCED = true, COMPLAINED = true}
local now, ttl = clock(ARGV[1]), tonumber(ARGV[2])

local function settle(K, a)
  local current = redis.call('HMGET', K[1], 'status', 'owner', 'attempts', 'settled_by', 'ix',
                             'created_at', 'ambiguous_via')
  local owner, attempts, status = current[2] ~= '' and current[2], current[3] or '0', ARGV[a + 2]
  if not owner and current[4] == ARGV[a + 1] then return {'OK', attempts} end
  if AFTER_SENT[current[1]] then return {'SENT', attempts} end
  if status ~= 'SENT' and owner ~= ARGV[a + 1] then return {'STALE', attempts} end
  local fields = {'status', status, 'updated_at', now, 'settled_by', ARGV[a + 1], 'owner', '',
                  'lease_until', ''}
  local function put(name, value) local n = #fields; fields[n + 1], fields[n + 2] = name, value end
  if ARGV[a + 3] ~= '' then put('provider', ARGV[a + 3]) end
  if ARGV[a + 4] ~= '' then put('provider_message_id', ARGV[a + 4]) end
  if ARGV[a + 5] ~= '' then put('last_error', ARGV[a + 5]) end
  if status == 'SENT' then put('sent_at', now) end
  if ARGV[a + 8] == '1' then put('dead_letter', '1') end
  local via = ARGV[a + 7]
  if via ~= '' then put('ambiguous_via', current[7] and (current[7] .. ',' .. via) or via) end
  if ARGV[a + 6] == '1' then attempts = tostring(tonumber(attempts) + 1); put('attempts', attempts) end
  local ix = current[5]
  if not ix then
    ix = index_time(current[6] or '', now, ttl)
    put('ix', ix)
    index_new(K, ARGV[a + 9], ix, ttl, false)
  end
  redis.call('HSET', K[1], unpack(fields))
  move(K, ARGV[a + 9], current[1], status, ix)
  if not current[1] then redis.call('EXPIRE', K[1], ttl) end
  if K[11] and status == 'SENT' then redis.call('SET', K[11], ARGV[a + 9], 'EX', ttl) end
  if ARGV[a + 10] ~= '' then trim_shard(K, now, ttl, tonumber(ARGV[a + 10])) end
  return {'OK', attempts}
end

local replies, k = {}, 0
for a = 2, #ARGV - 1, 11 do
  local n = 10 + tonumber(ARGV[a + 11])
  local ok, reply = pcall(settle, {unpack(KEYS, k + 1, k + n)}, a)
  replies[#replies + 1] = ok and reply or {'FAILED', about_one_record(reply)}
  k = k + n
end
return replies
