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
local requeued, buried = 0, 0
for _, id in ipairs(expired) do
  local props = parse_props(id)
  local attempt = tonumber(redis.call('HGET', K_ATTEMPTS, id) or '0')
  end_attempt(id)
  redis.call('HSET', K_ERRORS, id, 'lease expired')
  redis.call('HINCRBY', K_META, 'failed', 1)
  if not props or attempt >= props.max_attempts then
    bury(id, now, keep_count, keep_age_ms)
    buried = buried + 1
  else
    make_available(id, props.priority, now)
    requeued = requeued + 1
  end
end
return {OK, requeued, buried}
