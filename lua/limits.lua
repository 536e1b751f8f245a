-- LIMITS: read or change the queue's flow control, which pop.lua applies for all workers.
-- ARGV: pairs of field, value: `rate` and `group_rate` "N/window_ms" (N >= 1, window_ms >= 1),
-- `concurrency` and `group_concurrency` "N" (N >= 1), `weight:<group>` "N" (1 to 1000, a
-- group's share of turns; default 1). An empty value removes that limit; fields not named stay
-- as they are. No pairs: just read. Workers are woken, since a raised or removed limit may let
-- held-back jobs start, and groups parked at a group limit get back in line to be judged again.
-- Reply: {OK, rate, concurrency, group_rate, group_concurrency} ('' = none) as they are after
-- the call.
if #ARGV % 2 ~= 0 then
  return bad('expected pairs of field, value')
end
local weights = {}
for i = 1, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local group = string.match(field, '^weight:(.+)$')
  if field == 'rate' or field == 'group_rate' then
    local limit, window_ms = string.match(value, '^(%d+)/(%d+)$')
    if value ~= '' and (not limit or tonumber(limit) < 1 or tonumber(window_ms) < 1) then
      return bad(field .. ': expected N/window_ms with N >= 1 and window_ms >= 1, got ' .. value)
    end
  elseif field == 'concurrency' or field == 'group_concurrency' then
    local n = tonumber(value)
    if value ~= '' and (not string.match(value, '^%d+$') or n < 1) then
      return bad(field .. ': expected a whole number >= 1, got ' .. value)
    end
  elseif group then
    local n = tonumber(value)
    if #group > GROUP_NAME_LIMIT or string.find(group, '\0', 1, true) then
      return bad('weight: a group name is 1 to ' .. GROUP_NAME_LIMIT .. ' bytes, without NUL')
    end
    if value ~= '' and (not string.match(value, '^%d+$') or n < 1 or n > 1000) then
      return bad('weight of ' .. group .. ': expected a whole number from 1 to 1000, got ' .. value)
    end
    weights[#weights + 1] = {group, value}
  else
    return bad('unknown limit ' .. field .. ' (rate, concurrency, group_rate, group_concurrency, weight:<group>)')
  end
end
for i = 1, #ARGV, 2 do
  if not string.match(ARGV[i], '^weight:') then
    if ARGV[i + 1] == '' then
      redis.call('HDEL', K_META, ARGV[i])
    else
      redis.call('HSET', K_META, ARGV[i], ARGV[i + 1])
    end
  end
end
if #weights > 0 then
  redis.call('HSET', K_META, 'weighted', '1')
end
for _, weight in ipairs(weights) do
  if weight[2] == '' then
    redis.call('HDEL', K_GROUP_STATE, 'w:' .. weight[1])
  else
    redis.call('HSET', K_GROUP_STATE, 'w:' .. weight[1], weight[2])
  end
end
if #ARGV > 0 then
  -- Parked groups are few (at most one per group at a limit); those with no ready job left
  -- leave the line at the next pop.
  local parked = redis.call('ZRANGE', K_GROUP_PARKED, 0, -1)
  if #parked > 0 then
    redis.call('DEL', K_GROUP_PARKED)
    for _, group in ipairs(parked) do
      admit_group(group)
    end
  end
  if pending_count() > 0 then
    wake()
  end
end
local limits = redis.call('HMGET', K_META, 'rate', 'concurrency', 'group_rate', 'group_concurrency')
return {OK, limits[1] or '', limits[2] or '', limits[3] or '', limits[4] or ''}
