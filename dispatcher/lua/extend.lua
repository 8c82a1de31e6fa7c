-- Extend a claim this owner still holds, or with a lease of 0 hand it back as QUEUED.
-- KEYS     the record and its indexes (lua/_index.lua)
-- ARGV[1]  owner token   ARGV[2] now (ms, or "" for the Redis clock)   ARGV[3] lease (ms); 0 releases the claim
-- ARGV[4]  record TTL (s)   ARGV[5] message id
-- Returns 1 when the claim was still held by this owner, else 0.
local record = KEYS[1]
local fields = redis.call('HMGET', record, 'owner', 'status', 'created_at')
if fields[1] ~= ARGV[1] then
  return 0
end
local now, lease = clock(ARGV[2]), tonumber(ARGV[3])
if lease > 0 then
  redis.call('HSET', record, 'lease_until', now + lease)
else
  redis.call('HSET', record, 'status', 'QUEUED', 'updated_at', now)
  redis.call('HDEL', record, 'owner', 'lease_until')
  reindex(ARGV[5], fields[2], 'QUEUED', fields[3] or '', now, tonumber(ARGV[4]))
end
return 1
