-- POP: lease up to `count` jobs, highest priority first, FIFO within a priority. Due delayed
-- and retrying jobs are promoted first, at most `promote_limit` per set per call.
-- ARGV: count, lease_ms, promote_limit
-- Reply: {OK, now_ms, next_due_ms (-1 if none), paused (0/1), then per job: id, envelope,
-- attempt, token}. A paused queue leases nothing.
local count, lease_ms, promote_limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not count or count < 1 or not lease_ms or lease_ms < 1 or not promote_limit or promote_limit < 0 then
  return bad('expected count >= 1, lease_ms >= 1, promote_limit >= 0')
end

local now = now_ms()
if redis.call('HGET', K_META, 'paused') == '1' then
  return {OK, int(now), int(earliest_due() or -1), 1}
end

for _, zset in ipairs({K_SCHEDULED, K_RETRYING}) do
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', int(now), 'LIMIT', 0, promote_limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', zset, id)
    local props = parse_props(id)
    make_available(id, props and props.priority or 0, now)
  end
end

local reply = {OK, int(now), 0, 0}
local popped = redis.call('ZPOPMIN', K_PENDING, count)
local taken = #popped / 2
if taken > 0 then
  local last_token = redis.call('HINCRBY', K_META, 'token', taken)
  local deadline = int(now + lease_ms)
  for i = 1, taken do
    local id = popped[i * 2 - 1]
    local token = tostring(last_token - taken + i)
    redis.call('ZADD', K_ACTIVE, deadline, id)
    redis.call('HSET', K_TOKENS, id, token)
    local attempt = redis.call('HINCRBY', K_ATTEMPTS, id, 1)
    reply[#reply + 1] = id
    reply[#reply + 1] = redis.call('HGET', K_JOBS, id) or ''
    reply[#reply + 1] = attempt
    reply[#reply + 1] = token
  end
end

-- Work left behind goes to the next idle worker.
if redis.call('ZCARD', K_PENDING) > 0 then
  wake()
end
reply[3] = int(earliest_due() or -1)
return reply
