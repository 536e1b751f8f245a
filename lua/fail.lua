-- FAIL: end an attempt that failed. The script decides: retry after the job's backoff, or the
-- dead letter when the attempts are used up, the failure is permanent, or the job's record
-- does not parse (then the error says so).
-- ARGV: id, token, error, permanent (0/1), entropy (random integer for jitter),
--       keep_dead_count, keep_dead_age_ms
-- Reply: {OK, 'retry', run_at_ms, delay_ms} | {OK, 'dead', failed_at_ms} | {LEASE_LOST} | {BAD_ARGUMENT, msg}
-- A re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local id, token, message, permanent = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local entropy, keep_count, keep_age_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if #ARGV ~= 7 or (permanent ~= '0' and permanent ~= '1') or not entropy or not keep_count
    or not keep_age_ms then
  return bad('expected id, token, error, permanent, entropy, keep_dead_count, keep_dead_age_ms')
end
if id == PIN_FIELD or redis.call('HGET', K_TOKENS, id) ~= token then
  return {LEASE_LOST}
end
local props = props_of(id)
if not props then
  message = message .. ' (and the job record does not parse: sent to the dead letter)'
end

local now = now_ms()
pin(K_FAILURES)
local attempt = redis.call('HINCRBY', K_FAILURES, id, 1)
end_attempts({id}, {token})
set_by_id(K_ERRORS, {id, message})
redis.call('HINCRBY', K_META, 'failed', 1)
emit('failed', {id}, attempt, message)

if not props or permanent == '1' or attempt >= props.max_attempts then
  tell_waiters({id}, 'dead')
  emit('dead', {id}, attempt)
  bury({id}, now, keep_count, keep_age_ms)
  return remember({OK, 'dead', int(now)})
end

local delay = props.base
if props.backoff == 'e' then
  delay = math.min(props.cap, props.base * 2 ^ (attempt - 1))
end
if props.jitter and delay > 1 then
  -- "Equal jitter": half the delay is kept, the other half is random, so retries of jobs that
  -- failed together spread out without ever retrying much sooner than asked.
  local half = math.floor(delay / 2)
  delay = half + entropy % (delay - half + 1)
end
emit('retried', {id}, attempt, int(now + math.max(delay, 0)))
if delay <= 0 then
  make_available({id}, {props.priority}, now)
  return remember({OK, 'retry', int(now), 0})
end
schedule(K_RETRYING, {id}, {now + delay})
return remember({OK, 'retry', int(now + delay), int(delay)})
