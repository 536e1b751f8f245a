-- REAP: jobs whose lease expired (their worker died or stalled) go back to pending as a failed
-- attempt with the error "lease expired", or to the dead letter when their attempts are used
-- up or their record does not parse. The same sweep trims the retention sets by age and count
-- (cancelled jobs under the dead retention), so their bounds hold on a queue where nothing
-- finishes. One sweep per interval for the whole
-- fleet: the first caller takes a lock for interval_ms. A call handles at most `limit` jobs,
-- which bounds how long it blocks Redis and how many job records (payloads included) it reads;
-- when work is left, it says so, and the caller goes on with `continuing` set.
-- ARGV: interval_ms, limit (jobs), continuing (0/1), keep_dead_count, keep_dead_age_ms,
--       keep_completed_count, keep_completed_age_ms
-- Reply: {OK, requeued, buried, more (0/1), next_in_ms} | {SKIPPED, next_in_ms} when another
-- worker swept within the interval. next_in_ms says when the queue next needs a sweep (see
-- next_sweep_in below), -1 when not before one of its jobs becomes ready, which wakes the
-- workers: so a worker on a thousand idle queues does not sweep them all every interval.
-- A re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local interval_ms, limit, continuing = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local keep_dead_count, keep_dead_age_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local keep_completed_count, keep_completed_age_ms = tonumber(ARGV[6]), tonumber(ARGV[7])
if #ARGV ~= 7 or not interval_ms or interval_ms < 1 or not limit or limit < 1
    or (continuing ~= '0' and continuing ~= '1') or not keep_dead_count or not keep_dead_age_ms
    or not keep_completed_count or not keep_completed_age_ms then
  return bad('expected interval_ms, limit, continuing, keep_dead_count, keep_dead_age_ms, '
    .. 'keep_completed_count, keep_completed_age_ms')
end
-- A continuation goes on with the sweep its caller started (and locked); its lock may have
-- expired meanwhile, and two sweepers at once are harmless: each call is atomic.

-- In ms from now, when the queue next needs a sweep: its first lease expires, its pending jobs
-- may be leased at any time (then within the interval), its next scheduled or retrying job
-- comes due (and may be leased), or its oldest completed, dead or cancelled job outlives its retention
-- age; never before the lock lets a sweep in. -1: none of these, so no lease can appear before
-- a job becomes ready, which publishes a wake-up.
local function next_sweep_in(now)
  local at = earliest_due()
  local function sooner(t)
    if t and (at == nil or t < at) then
      at = t
    end
  end
  local first_lease = redis.call('ZRANGE', K_ACTIVE, 0, 0, 'WITHSCORES')[2]
  if first_lease then
    sooner(tonumber(first_lease) + 1)
  end
  if pending_count() > 0 then
    sooner(now)
  end
  for zset, keep_age_ms in pairs({[K_COMPLETED] = keep_completed_age_ms, [K_DEAD] = keep_dead_age_ms,
      [K_CANCELLED] = keep_dead_age_ms}) do
    local oldest = keep_age_ms > 0 and redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')[2]
    if oldest then
      sooner(tonumber(oldest) + keep_age_ms + 1)
    end
  end
  if at == nil then
    return -1
  end
  return int(math.max(at - now, redis.call('PTTL', K_REAPER), 0))
end

if continuing == '0' and not redis.call('SET', K_REAPER, '1', 'NX', 'PX', interval_ms) then
  return {SKIPPED, next_sweep_in(now_ms())}
end

local now = now_ms()
local leases = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', '(' .. int(now), 'LIMIT', 0, limit)
-- The jobs of expired leases that are still held by them (the others already settled), up to
-- `limit`. A lease taken only in part stays expired in `active` for the next call.
local expired, tokens, done = {}, {}, {}
local more = false
for _, token in ipairs(leases) do
  local ok, ids = pcall(cmsgpack.unpack, redis.call('HGET', K_LEASES, token) or '')
  if not ok or type(ids) ~= 'table' then
    ids = {}
  end
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
    more = true
    break
  end
  done[#done + 1] = token
end
if #leases == limit then
  more = true
end

local failures = hmget(K_FAILURES, expired)
local requeue, priorities, buried, errors, counted = {}, {}, {}, {}, {}
local attempts_all, attempts_requeued, attempts_buried = {}, {}, {}
for i, id in ipairs(expired) do
  local p = props_of(id)
  local attempts = (tonumber(failures[i]) or 0) + 1
  errors[2 * i - 1] = id
  errors[2 * i] = 'lease expired'
  if not p then
    buried[#buried + 1] = id
    errors[2 * i] = 'lease expired (and the job record does not parse: sent to the dead letter)'
  elseif attempts >= p.max_attempts then
    buried[#buried + 1] = id
    attempts_buried[#buried] = attempts
  else
    requeue[#requeue + 1] = id
    priorities[#priorities + 1] = p.priority
    attempts_requeued[#requeue] = attempts
  end
  attempts_all[i] = attempts
  counted[2 * i - 1] = id
  counted[2 * i] = attempts
end

-- Every check is done; the writes follow.
if #expired > 0 then
  end_attempts(expired, tokens)
end
-- Every expired lease handled in full goes, including one none of whose jobs is held any more.
if #done > 0 then
  local fields = {}
  for _, token in ipairs(done) do
    fields[#fields + 1] = token
    fields[#fields + 1] = '#' .. token
  end
  variadic('ZREM', K_ACTIVE, done)
  variadic('HDEL', K_LEASES, fields)
end
if #expired > 0 then
  set_by_id(K_ERRORS, errors)
  set_by_id(K_FAILURES, counted)
  redis.call('HINCRBY', K_META, 'failed', #expired)
  emit('failed', expired, attempts_all, 'lease expired')
  emit('dead', buried, attempts_buried)
  emit('retried', requeue, attempts_requeued, int(now))
  tell_waiters(buried, 'dead')
  bury(buried, now, keep_dead_count, keep_dead_age_ms)
  make_available(requeue, priorities, now)
end
if trim(K_COMPLETED, keep_completed_count, keep_completed_age_ms, now, limit) then
  more = true
end
if trim(K_DEAD, keep_dead_count, keep_dead_age_ms, now, limit) then
  more = true
end
if trim(K_CANCELLED, keep_dead_count, keep_dead_age_ms, now, limit) then
  more = true
end
local reply = {OK, #requeue, #buried, more and 1 or 0, next_sweep_in(now)}
-- The sweep of a queue that was obliterated under a running worker (no meta left) writes no
-- memory, which would bring keys of the queue back; a re-send of it finds the lock and answers
-- SKIPPED, as harmless.
if redis.call('HLEN', K_META) == 0 then
  return reply
end
return remember(reply)
