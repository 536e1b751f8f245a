-- CANCEL: a waiting job (pending, scheduled, retrying) is removed; a running one ends now, as
-- cancelled, and its worker is told on the queue's channel (its late complete or fail is
-- refused by the token check; a worker that missed the message finds the lease gone at its
-- next heartbeat). Either way the job is kept as cancelled, under the dead retention (like a
-- failed job: kept for inspection, then forgotten), counted as cancelled (never retried, never
-- dead), its unique key released, and callers waiting for it are told. Removing a
-- default-priority pending job searches that list (LREM, O(n)): an operator's call, not a hot
-- path.
-- ARGV: id, keep_count, keep_age_ms (the retention of cancelled jobs)
-- Reply: {OK, 'removed'} | {OK, 'stopped'} (it was running) | {OK, 'completed' | 'dead' |
-- 'cancelled'} (it had finished: nothing changed) | {NOT_FOUND}. A re-sent call gets the first
-- answer.
local memo = remembered()
if memo then
  return memo
end
local id, keep_count, keep_age_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if #ARGV ~= 3 or not keep_count or keep_count < 0 or not keep_age_ms or keep_age_ms < 0 then
  return bad('expected id, keep_count, keep_age_ms')
end
if id == PIN_FIELD or redis.call('HEXISTS', K_JOBS, id) == 0 then
  return {NOT_FOUND}
end
local token = redis.call('HGET', K_TOKENS, id)
local attempts = tonumber(redis.call('HGET', K_FAILURES, id) or '0')
local outcome = 'stopped'
if token then
  attempts = attempts + 1
else
  local finished = state_among(FINISHED_SETS, id)
  if finished then
    return {OK, finished}
  end
  outcome = 'removed'
end

-- Every check is done; the writes follow.
if token then
  end_attempts({id}, {token})
  -- The stopped attempt ended without success: `job` shows it among the attempts.
  pin(K_FAILURES)
  redis.call('HINCRBY', K_FAILURES, id, 1)
  redis.call('PUBLISH', K_WAKE, 'cancel:' .. token .. ':' .. id)
else
  if redis.call('ZREM', K_SCHEDULED, id) + redis.call('ZREM', K_RETRYING, id) == 0 then
    unqueue_ready(id)
  end
end
emit('cancelled', {id}, attempts)
tell_waiters({id}, 'cancelled')
release_unique({id})
retain(K_CANCELLED, 'cancelled', {id}, now_ms(), keep_count, keep_age_ms)
return remember({OK, outcome})
