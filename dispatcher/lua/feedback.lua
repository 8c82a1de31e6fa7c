-- Record what a provider's webhook said became of a SENT message: DELIVERED, BOUNCED (hard or
-- soft) or COMPLAINED, with the event's time and the provider's reason code.
-- KEYS     the record and its indexes (lua/_index.lua)
-- ARGV[1]  message id   ARGV[2] DELIVERED | BOUNCED | COMPLAINED   ARGV[3] event time (ms)
-- ARGV[4]  bounce type: hard | soft | ""   ARGV[5] reason code or ""   ARGV[6] now (ms or "")
-- ARGV[7]  record TTL (s)
-- Returns {verdict, provider}: APPLIED, IGNORED (not newer than what the record says: no
-- regression), UNKNOWN (no such record), EARLY (not settled yet: its send may be recorded SENT
-- in a moment; nothing changes) or NOT_SENT (ERROR: nothing changes).
-- Order: SENT < DELIVERED < BOUNCED < COMPLAINED, and a hard bounce after a soft one; so a late
-- bounce after DELIVERED applies, and a DELIVERED after a bounce is ignored. The record keeps
-- the expiry it has: the event does not make it live longer.
local RANK = {SENT = 0, DELIVERED = 1, BOUNCED = 2, COMPLAINED = 3}
local record = KEYS[1]
local f = redis.call('HMGET', record, 'status', 'provider', 'bounce_type', 'created_at')
if not f[1] then return {'UNKNOWN', ''} end
local old, new, provider = f[1], ARGV[2], f[2] or ''
if old == 'ERROR' then return {'NOT_SENT', provider} end
if not RANK[old] then return {'EARLY', provider} end
local harder = old == 'BOUNCED' and new == 'BOUNCED' and f[3] == 'soft' and ARGV[4] == 'hard'
if RANK[new] <= RANK[old] and not harder then return {'IGNORED', provider} end
local now = clock(ARGV[6])
redis.call('HSET', record, 'status', new, 'updated_at', now, 'event_at', ARGV[3],
           'reason_code', ARGV[5])
if ARGV[4] ~= '' then
  redis.call('HSET', record, 'bounce_type', ARGV[4])
else
  redis.call('HDEL', record, 'bounce_type')
end
reindex(ARGV[1], old, new, f[4] or '', now, tonumber(ARGV[7]))
return {'APPLIED', provider}
