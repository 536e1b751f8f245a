-- LIMITS: read or change the queue's flow control, which pop.lua applies for all workers.
-- ARGV: pairs of field, value: `rate` "N/window_ms" (N >= 1, window_ms >= 1) and `concurrency`
-- "N" (N >= 1); an empty value removes that limit; fields not named stay as they are. No pairs:
-- just read. Workers are woken, since a raised or removed limit may let held-back jobs start.
-- Reply: {OK, rate ('' = none), concurrency ('' = none)} as they are after the call.
if #ARGV % 2 ~= 0 then
  return bad('expected pairs of field, value')
end
for i = 1, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 'rate' then
    local limit, window_ms = string.match(value, '^(%d+)/(%d+)$')
    if value ~= '' and (not limit or tonumber(limit) < 1 or tonumber(window_ms) < 1) then
      return bad('rate: expected N/window_ms with N >= 1 and window_ms >= 1, got ' .. value)
    end
  elseif field == 'concurrency' then
    local n = tonumber(value)
    if value ~= '' and (not string.match(value, '^%d+$') or n < 1) then
      return bad('concurrency: expected a whole number >= 1, got ' .. value)
    end
  else
    return bad('unknown limit ' .. field .. ' (rate, concurrency)')
  end
end
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', K_META, ARGV[i])
  else
    redis.call('HSET', K_META, ARGV[i], ARGV[i + 1])
  end
end
if #ARGV > 0 and pending_count() > 0 then
  wake()
end
local limits = redis.call('HMGET', K_META, 'rate', 'concurrency')
return {OK, limits[1] or '', limits[2] or ''}
