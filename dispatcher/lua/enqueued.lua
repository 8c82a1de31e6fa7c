-- After SendMessageBatch: a message this intake put on the queue becomes QUEUED (unless a
-- worker has claimed it already); one that could not be put there stays PENDING, released at
-- once for a retry of the request.
-- KEYS     the record and its indexes (lua/_index.lua)
-- ARGV[1]  message id   ARGV[2] intake token   ARGV[3] now (ms or "")   ARGV[4] record TTL (s)
-- ARGV[5]  QUEUED or FAILED
-- Returns 1, or 0 when another intake has taken the record over (nothing changes).
local record = KEYS[1]
local fields = redis.call('HMGET', record, 'status', 'intake')
if fields[2] ~= ARGV[2] then return 0 end
local now = clock(ARGV[3])
if ARGV[5] == 'FAILED' then
  redis.call('HSET', record, 'intake_until', 0, 'last_error', 'not queued: SQS refused it')
  return 1
end
redis.call('HDEL', record, 'intake', 'intake_until')
if fields[1] == 'PENDING' then
  redis.call('HSET', record, 'status', 'QUEUED', 'updated_at', now)
  redis.call('HDEL', record, 'last_error')
  reindex(ARGV[1], 'PENDING', 'QUEUED', '', now, tonumber(ARGV[4]))
end
return 1
