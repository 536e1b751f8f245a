-- REAP: jobs whose lease expired (their worker died or stalled) go back to pending as a failed
-- attempt with the error "lease expired", or to the dead letter when their attempts are used
-- up. One sweep per interval for the whole fleet: the first caller takes a lock for interval_ms.
-- A call handles at most `limit` jobs, which bounds how long it blocks Redis and how many job
-- records (payloads included) it reads; when jobs are left, it gives the lock back and says
-- so, and the caller calls again.
-- ARGV: interval_ms, limit (jobs), keep_dead_count, keep_dead_age_ms
-- Reply: {OK, requeued, buried, more (0/1)} | {SKIPPED} when another worker swept within the
-- interval
local interval_ms, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local keep_count, keep_age_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
if not interval_ms or interval_ms < 1 or not limit or limit < 1 or not keep_count or not keep_age_ms then
  return bad('expected interval_ms, limit, keep_dead_count, keep_dead_age_ms')
end
if not redis.call('SET', K_REAPER, '1', 'NX', 'PX', interval_ms) then
  return {SKIPPED}
end

local now = now_ms()
local leases = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', '(' .. int(now), 'LIMIT', 0, limit)
if #leases == 0 then
  return {OK, 0, 0, 0}
end
-- The jobs of expired leases that are still held by them (the others already settled), up to
-- `limit`. A lease taken only in part stays expired in `active` for the next call.
local expired, tokens, done = {}, {}, {}
local more = 0
for _, token in ipairs(leases) do
  local packed = redis.call('HGET', K_LEASES, token)
  local ids = packed and cmsgpack.unpack(packed) or {}
  local current = hmget(K_TOKENS, ids)
  local held = {}
  for i, id in ipairs(ids) do
    if current[i] == token then
      held[#held + 1] = id
    end
  end
  local room = limit - #expired
  for i = 1, math.min(#held, room) do
    expired[#expired + 1] = held[i]
    tokens[#tokens + 1] = token
  end
  if #held > room then
    more = 1
    break
  end
  done[#done + 1] = token
end
if more == 0 and #leases == limit then
  more = 1
end
local function drop_leases()
  -- Every expired lease handled in full goes, including one none of whose jobs is held any more.
  local fields = {}
  for _, token in ipairs(done) do
    fields[#fields + 1] = token
    fields[#fields + 1] = '#' .. token
  end
  if #done > 0 then
    variadic('ZREM', K_ACTIVE, done)
  end
  variadic('HDEL', K_LEASES, fields)
end

if more == 1 then
  -- The sweep goes on in the next call, from whichever worker makes it.
  redis.call('DEL', K_REAPER)
end
if #expired == 0 then
  drop_leases()
  return {OK, 0, 0, more}
end
local failures = hmget(K_FAILURES, expired)
local requeue, priorities, buried, errors, counted = {}, {}, {}, {}, {}
for i, id in ipairs(expired) do
  local p = props_of(id)
  local attempts = (tonumber(failures[i]) or 0) + 1
  if not p or attempts >= p.max_attempts then
    buried[#buried + 1] = id
  else
    requeue[#requeue + 1] = id
    priorities[#priorities + 1] = p.priority
  end
  errors[2 * i - 1] = id
  errors[2 * i] = 'lease expired'
  counted[2 * i - 1] = id
  counted[2 * i] = attempts
end
end_attempts(expired, tokens)
drop_leases()
set_by_id(K_ERRORS, errors)
set_by_id(K_FAILURES, counted)
redis.call('HINCRBY', K_META, 'failed', #expired)
bury(buried, now, keep_count, keep_age_ms)
make_available(requeue, priorities, now)
return {OK, #requeue, #buried, more}
