-- CANCEL: a waiting job (pending, scheduled, retrying) is removed; a running one ends now, as
-- cancelled, and its worker is told on the queue's channel (its late complete or fail is
-- refused by the token check; a worker that missed the message finds the lease gone at its
-- next heartbeat). Either way the job is forgotten, counted as cancelled (never
-- retried, never dead), and callers waiting for it are told. Removing a default-priority
-- pending job searches that list (LREM, O(n)): an operator's call, not a hot path.
-- ARGV: id
-- Reply: {OK, 'removed'} | {OK, 'stopped'} (it was running) | {OK, 'completed' | 'dead'} (it
-- had finished: nothing changed) | {NOT_FOUND}. A re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local id, refused = job_argument()
if not id then
  return refused
end
local token = redis.call('HGET', K_TOKENS, id)
local attempts = tonumber(redis.call('HGET', K_FAILURES, id) or '0')
local outcome = 'stopped'
if token then
  attempts = attempts + 1
else
  for _, finished in ipairs({{K_COMPLETED, 'completed'}, {K_DEAD, 'dead'}}) do
    if redis.call('ZSCORE', finished[1], id) then
      return {OK, finished[2]}
    end
  end
  outcome = 'removed'
end

-- Every check is done; the writes follow.
if token then
  end_attempts({id}, {token})
  redis.call('PUBLISH', K_WAKE, 'cancel:' .. token .. ':' .. id)
else
  if redis.call('ZREM', K_SCHEDULED, id) + redis.call('ZREM', K_RETRYING, id) == 0 then
    unqueue_ready(id)
  end
end
emit('cancelled', {id}, attempts)
tell_waiters({id}, 'cancelled')
forget({id})
redis.call('HINCRBY', K_META, 'cancelled', 1)
return remember({OK, outcome})
