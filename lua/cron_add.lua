-- CRON_ADD: adds a named schedule, or replaces the one of that name.
-- ARGV: name, definition (MessagePack, from the client), first due time (Unix ms).
-- Reply: {OK, 1 if added or 0 if replaced}, or {BAD_ARGUMENT, message}.
-- Publishes `schedules` on the wake-up channel: workers re-read the queue's schedules.
local memo = remembered()
if memo then
  return memo
end
local name, definition, next_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
if not name or name == '' or string.sub(name, 1, 1) == '#' then
  return bad('expected a schedule name that does not start with #')
end
if not definition or definition == '' then
  return bad('empty schedule definition')
end
if not next_ms or next_ms < 0 or next_ms % 1 ~= 0 then
  return bad('expected the first due time in Unix ms')
end
local added = redis.call('HSET', K_SCHEDULES, name, definition, '#' .. name, int(next_ms)) > 0 and 1 or 0
-- Workers read the schedules of a queue without any only when told (see worker/schedules.rs).
redis.call('PUBLISH', K_WAKE, 'schedules')
return remember({OK, added})
