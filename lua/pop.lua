-- POP: lease up to `count` jobs, highest priority first, FIFO within a priority. Due delayed
-- and retrying jobs are promoted first, at most `promote_limit` per set per call.
-- ARGV: count, lease_ms, promote_limit
-- Reply: {OK, now_ms, next_due_ms (-1 if none), paused (0/1), token, then per job: id,
-- record (properties then envelope, see K_JOBS), attempt}. The jobs share one lease (token), renewed and expired together; each job
-- still settles on its own. A paused queue leases nothing.
local count, lease_ms, promote_limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not count or count < 1 or not lease_ms or lease_ms < 1 or not promote_limit or promote_limit < 0 then
  return bad('expected count >= 1, lease_ms >= 1, promote_limit >= 0')
end

local now = now_ms()
if redis.call('HGET', K_META, 'paused') == '1' then
  return {OK, int(now), int(earliest_due() or -1), 1, ''}
end

for _, zset in ipairs({K_SCHEDULED, K_RETRYING}) do
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', int(now), 'LIMIT', 0, promote_limit)
  if #due > 0 then
    variadic('ZREM', zset, due)
    make_available(due, priorities_of(due), nil)
  end
end

local reply = {OK, int(now), 0, 0, ''}
local ids = take_pending(count)
local taken = #ids
if taken > 0 then
  -- One lease for the batch: per job only its token is written, and the same string each time.
  local token = tostring(redis.call('HINCRBY', K_META, 'token', 1))
  reply[5] = token
  redis.call('ZADD', K_ACTIVE, int(now + lease_ms), token)
  redis.call('HSET', K_LEASES, token, cmsgpack.pack(ids), '#' .. token, taken)
  local failures = hmget(K_FAILURES, ids)
  local records = hmget(K_JOBS, ids)
  local tokens = {}
  local at = 5
  for i = 1, taken do
    local id = ids[i]
    tokens[2 * i - 1] = id
    tokens[2 * i] = token
    reply[at + 1] = id
    reply[at + 2] = records[i] or ''
    reply[at + 3] = (tonumber(failures[i]) or 0) + 1
    at = at + 3
  end
  set_by_id(K_TOKENS, tokens)
end

-- Work left behind goes to the next idle worker.
if pending_count() > 0 then
  wake()
end
reply[3] = int(earliest_due() or -1)
return reply
