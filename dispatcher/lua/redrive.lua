-- Ready one dead-lettered message to be sent again (`dispatcher dlq redrive`), before its copy
-- goes back to the source queue: ERROR with dead_letter set -> QUEUED, so the worker claims and
-- sends it once more. Its attempts start afresh (the old count is added to redriven_attempts,
-- and redriven counts the redrives); last_error, provider and ambiguous_via stay as history.
-- KEYS     the record and its indexes (lua/_index.lua)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] record TTL (s)   ARGV[3] message id
-- Returns REDRIVE (reset now), READY (already QUEUED, or no record: send it as it is), or the
-- status that keeps it in the DLQ: SENT, PENDING, SENDING, or ERROR never dead-lettered.
local record = KEYS[1]
local f = redis.call('HMGET', record, 'status', 'dead_letter', 'attempts')
local status = f[1]
if not status or status == 'QUEUED' then return 'READY' end
if status ~= 'ERROR' or f[2] ~= '1' then return status end
local now, ttl = clock(ARGV[1]), tonumber(ARGV[2])
redis.call('HINCRBY', record, 'redriven', 1)
redis.call('HINCRBY', record, 'redriven_attempts', tonumber(f[3] or '0'))
redis.call('HSET', record, 'status', 'QUEUED', 'attempts', 0, 'updated_at', now)
redis.call('HDEL', record, 'dead_letter')
reindex(ARGV[3], 'ERROR', 'QUEUED', redis.call('HGET', record, 'created_at') or '', now, ttl)
redis.call('EXPIRE', record, ttl)
return 'REDRIVE'
