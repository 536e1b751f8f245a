-- RETRY: run a scheduled or retrying job now instead of at its due time. It becomes pending
-- (through make_available, which wakes the workers) with its attempts as they were.
-- ARGV: id
-- Reply: {OK, state, moved (1, or 0 when the job is in another state and nothing changed)} |
-- {NOT_FOUND}. A re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local id, refused = job_argument()
if not id then
  return refused
end
local zset, state = nil, nil
if redis.call('ZSCORE', K_SCHEDULED, id) then
  zset, state = K_SCHEDULED, 'scheduled'
elseif redis.call('ZSCORE', K_RETRYING, id) then
  zset, state = K_RETRYING, 'retrying'
end
if not zset then
  -- Where it is, for the caller's message (as job.lua finds it).
  if redis.call('HEXISTS', K_TOKENS, id) == 1 then
    return {OK, 'active', 0}
  end
  local finished = state_among(FINISHED_SETS, id)
  if finished then
    return {OK, finished, 0}
  end
  return {OK, 'pending', 0}
end
redis.call('ZREM', zset, id)
make_available({id}, priorities_of({id}), now_ms())
return remember({OK, state, 1})
