-- Record one message the API accepted (status PENDING) before it goes on the queue.
-- KEYS     the record and its indexes (lua/_index.lua), then KEYS[11] its batch index
-- ARGV[1]  message id   ARGV[2] intake token (one per request or upload)   ARGV[3] now (ms or "")
-- ARGV[4]  record TTL (s)   ARGV[5] intake lease (ms)   ARGV[6] created_by   ARGV[7] batch id
-- Returns NEW (recorded: enqueue it), RETAKEN (PENDING, left by an intake that failed or died:
-- enqueue it) or DUPLICATE (this intake saw it already, or it is queued, sent or being enqueued
-- by another intake: skip it).
local record = KEYS[1]
local now, ttl = clock(ARGV[3]), tonumber(ARGV[4])
local fields = redis.call('HMGET', record, 'status', 'intake', 'intake_until')
if fields[1] then
  if fields[1] ~= 'PENDING' or fields[2] == ARGV[2] or tonumber(fields[3] or '0') > now then
    return 'DUPLICATE'
  end
  redis.call('HSET', record, 'intake', ARGV[2], 'intake_until', now + tonumber(ARGV[5]))
  return 'RETAKEN'
end
redis.call('HSET', record, 'status', 'PENDING', 'created_at', now, 'updated_at', now,
           'created_by', ARGV[6], 'batch_id', ARGV[7],
           'intake', ARGV[2], 'intake_until', now + tonumber(ARGV[5]))
reindex(ARGV[1], false, 'PENDING', now, now, ttl, KEYS[11])
redis.call('EXPIRE', record, ttl)
return 'NEW'
