-- CRON_FIRE: enqueues the job of a schedule's due tick, once: every worker that sees the tick
-- due calls this, and only the call that finds the schedule as it read it (its definition and
-- due time) enqueues and moves the schedule to its next tick; the others are SKIPPED.
-- ARGV: name, due ms (as read), SHA-1 of the definition (as read), next due ms, then the job:
--   props ("priority|max_attempts|backoff", as push takes them), id, envelope.
-- Reply: {OK}, {SKIPPED} (another call fired the tick, or the schedule changed) or {NOT_FOUND}
-- (the schedule was removed), or {BAD_ARGUMENT, message}.
local memo = remembered()
if memo then
  return memo
end
local name, due, sha, next_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local props, id, envelope = ARGV[5], ARGV[6], ARGV[7]
if not next_ms or not envelope or envelope == '' or id == '' then
  return bad('expected name, due, definition SHA-1, next due, props, id, envelope')
end
local priority = tonumber(string.match(props, '^(%-?%d+)|%d+|[fe]|%d+|%d+|[01]$'))
if not priority or math.abs(priority) > PRIORITY_LIMIT then
  return bad('malformed properties')
end
local definition = redis.call('HGET', K_SCHEDULES, name)
if not definition then
  return {NOT_FOUND}
end
if redis.call('HGET', K_SCHEDULES, '#' .. name) ~= due or redis.sha1hex(definition) ~= sha then
  return {SKIPPED}
end
redis.call('HSET', K_SCHEDULES, '#' .. name, int(next_ms))
if redis.call('HEXISTS', K_JOBS, id) == 0 then
  set_by_id(K_JOBS, {id, record_head(int(now_ms()), props) .. envelope})
  if priority ~= 0 then
    set_by_id(K_PRIORITIES, {id, tostring(priority)})
  end
  make_available({id}, {priority}, nil)
  redis.call('HINCRBY', K_META, 'enqueued', 1)
end
return remember({OK})
