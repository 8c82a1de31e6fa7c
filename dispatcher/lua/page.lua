-- One shard's part of a list page: ids newest first, from one index (read only).
-- KEYS[1]  the index to walk   KEYS[2] (optional) a second index the ids must also be in
-- ARGV[1]  upper index time (ms, inclusive)   ARGV[2] lower index time (ms, inclusive)
-- ARGV[3]  cursor time (ms) or ""   ARGV[4] cursor id: only ids after (time, id) in
--          (time desc, id desc) order   ARGV[5] how many ids at most
-- With two indexes, the smaller one is walked and each id looked up in the other.
-- Returns {id, time, id, time, ...}.
local walk, other = KEYS[1], KEYS[2]
if other and redis.call('ZCARD', other) < redis.call('ZCARD', walk) then
  walk, other = other, walk
end
local upper, lower, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local cursor, cursor_id = tonumber(ARGV[3]), ARGV[4]
if cursor and cursor < upper then upper = cursor end
local found, offset, chunk = {}, 0, math.max(limit, 100)
while #found < 2 * limit do
  local page = redis.call('ZREVRANGEBYSCORE', walk, upper, lower, 'WITHSCORES',
                          'LIMIT', offset, chunk)
  if #page == 0 then break end
  for i = 1, #page, 2 do
    local id, score = page[i], tonumber(page[i + 1])
    local after = not cursor or score < cursor or id < cursor_id
    if after and (not other or redis.call('ZSCORE', other, id)) then
      found[#found + 1] = id
      found[#found + 1] = page[i + 1]
      if #found >= 2 * limit then break end
    end
  end
  offset = offset + #page / 2
end
return found
