-- REAP: jobs whose lease expired (their worker died or stalled) go back to pending as a failed
-- attempt with the error "lease expired", or to the dead letter when their attempts are used
-- up. One sweep per interval for the whole fleet: the first caller takes a lock for interval_ms.
-- ARGV: interval_ms, limit, keep_dead_count, keep_dead_age_ms
-- Reply: {OK, requeued, buried} | {SKIPPED} when another worker swept within the interval
local interval_ms, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local keep_count, keep_age_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
if not interval_ms or interval_ms < 1 or not limit or limit < 1 or not keep_count or not keep_age_ms then
  return bad('expected interval_ms, limit, keep_dead_count, keep_dead_age_ms')
end
if not redis.call('SET', K_REAPER, '1', 'NX', 'PX', interval_ms) then
  return {SKIPPED}
end

local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', '(' .. int(now), 'LIMIT', 0, limit)
if #expired == 0 then
  return {OK, 0, 0}
end
local props = hmget(K_PROPS, expired)
local attempts = hmget(K_ATTEMPTS, expired)
local requeue, priorities, buried, errors = {}, {}, {}, {}
for i, id in ipairs(expired) do
  local p = parse_props(props[i])
  if not p or (tonumber(attempts[i]) or 0) >= p.max_attempts then
    buried[#buried + 1] = id
  else
    requeue[#requeue + 1] = id
    priorities[#priorities + 1] = p.priority
  end
  errors[2 * i - 1] = id
  errors[2 * i] = 'lease expired'
end
end_attempts(expired)
variadic('HSET', K_ERRORS, errors)
redis.call('HINCRBY', K_META, 'failed', #expired)
bury(buried, now, keep_count, keep_age_ms)
make_available(requeue, priorities, now)
return {OK, #requeue, #buried}
