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
  if #due > 0 then
    variadic('ZREM', zset, due)
    make_available(due, priorities_of(due), nil)
  end
end

local reply = {OK, int(now), 0, 0}
local popped = redis.call('ZPOPMIN', K_PENDING, count)
local taken = #popped / 2
if taken > 0 then
  local ids = {}
  for i = 1, taken do
    ids[i] = popped[i * 2 - 1]
  end
  local last_token = redis.call('HINCRBY', K_META, 'token', taken)
  local deadline = int(now + lease_ms)
  local attempts = hmget(K_ATTEMPTS, ids)
  local envelopes = hmget(K_JOBS, ids)
  local active, tokens, counts = {}, {}, {}
  for i, id in ipairs(ids) do
    local token = tostring(last_token - taken + i)
    local attempt = (tonumber(attempts[i]) or 0) + 1
    active[2 * i - 1] = deadline
    active[2 * i] = id
    tokens[2 * i - 1] = id
    tokens[2 * i] = token
    counts[2 * i - 1] = id
    counts[2 * i] = attempt
    reply[#reply + 1] = id
    reply[#reply + 1] = envelopes[i] or ''
    reply[#reply + 1] = attempt
    reply[#reply + 1] = token
  end
  variadic('ZADD', K_ACTIVE, active)
  variadic('HSET', K_TOKENS, tokens)
  variadic('HSET', K_ATTEMPTS, counts)
end

-- Work left behind goes to the next idle worker.
if redis.call('ZCARD', K_PENDING) > 0 then
  wake()
end
reply[3] = int(earliest_due() or -1)
return reply
