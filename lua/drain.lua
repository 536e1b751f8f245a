-- DRAIN: remove up to `limit` waiting jobs (pending, scheduled, retrying) and everything kept
-- about them. The client repeats the call until one removes fewer than `limit`, so that no
-- call blocks Redis for long on a large queue. Running and finished jobs stay.
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
-- Groups' ready jobs. Once none is left, no group is in line or parked for one either (a
-- group emptied in part leaves the line at the next pop that finds it empty).
if #ids < limit then
  local members = redis.call('ZRANGE', K_GROUP_JOBS, 0, limit - #ids - 1)
  if #members > 0 then
    redis.call('ZREMRANGEBYRANK', K_GROUP_JOBS, 0, #members - 1)
    for _, member in ipairs(members) do
      ids[#ids + 1] = group_member_id(member)
    end
  end
  if redis.call('ZCARD', K_GROUP_JOBS) == 0 then
    redis.call('DEL', K_GROUP_TURNS, K_GROUP_PARKED)
  end
end
if #ids == 0 then
  return {OK, 0}
end
forget(ids)
return remember({OK, #ids})
