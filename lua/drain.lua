-- DRAIN: remove up to `limit` waiting jobs (pending, scheduled, retrying) and everything kept
-- about them. The client repeats the call until one removes fewer than `limit`, so that no
-- call blocks Redis for long on a large queue. Running and finished jobs stay. Callers waiting
-- for a removed job are told it was deleted.
-- ARGV: limit
-- Reply: {OK, removed}; a re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local limit = tonumber(ARGV[1])
if #ARGV ~= 1 or not limit or limit < 1 or limit % 1 ~= 0 then
  return bad('expected limit >= 1')
end
local ids = {}
for _, zset in ipairs({K_PENDING, K_SCHEDULED, K_RETRYING}) do
  if #ids < limit then
    local taken = redis.call('ZRANGE', zset, 0, limit - #ids - 1)
    if #taken > 0 then
      redis.call('ZREMRANGEBYRANK', zset, 0, #taken - 1)
      for _, id in ipairs(taken) do
        ids[#ids + 1] = id
      end
    end
  end
end
if #ids < limit then
  for _, id in ipairs(redis.call('LPOP', K_PENDING_DEFAULT, limit - #ids) or {}) do
    ids[#ids + 1] = id
  end
end
if #ids < limit then
  take_grouped_ready(limit - #ids, ids)
end
if #ids == 0 then
  return {OK, 0}
end
tell_waiters(ids, 'deleted')
forget(ids)
return remember({OK, #ids})
