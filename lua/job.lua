-- JOB: one job's state and record (read-only).
-- ARGV: id
-- Reply: {OK, state, record (properties then envelope, see K_JOBS), attempts,
--         last_error ('' if none), run_at_ms ('' if none), state_since_ms,
--         result (JSON, '' if none), progress (JSON, '' if none), group ('' if none)}
--         | {NOT_FOUND}
-- state_since_ms is the lease deadline for an active job, the run-at time for a waiting one,
-- and the time it finished for a completed, dead or cancelled one.
local id = ARGV[1]
if #ARGV ~= 1 then
  return bad('expected id')
end
if id == PIN_FIELD then
  return {NOT_FOUND}
end
local record = redis.call('HGET', K_JOBS, id)
if not record then
  return {NOT_FOUND}
end
-- Not leased and in no sorted set, a job waits in the default-priority list: no script leaves a
-- job in no structure, so the lookup needs no O(n) search of that list.
local state, score = 'pending', nil
local token = redis.call('HGET', K_TOKENS, id)
if token then
  state, score = 'active', redis.call('ZSCORE', K_ACTIVE, token)
else
  local found, _, found_score = state_among(STATE_SETS, id)
  if found then
    state, score = found, found_score
  end
end
local since = run_at(id, record)
if state == 'pending' then
  score = since
end
-- Attempts started: the ones that ended without success, plus the one running or succeeded.
local attempts = tonumber(redis.call('HGET', K_FAILURES, id) or '0')
if state == 'active' or state == 'completed' then
  attempts = attempts + 1
end
return {
  OK, state, record,
  attempts,
  redis.call('HGET', K_ERRORS, id) or '',
  since and int(since) or '',
  score or '',
  redis.call('HGET', K_RESULTS, id) or '',
  redis.call('HGET', K_PROGRESS, id) or '',
  group_name(redis.call('HGET', K_GROUP_OF, id) or '') or '',
}
