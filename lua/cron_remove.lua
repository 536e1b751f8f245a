-- CRON_REMOVE: removes a named schedule. ARGV: name.
-- Reply: {OK} or {NOT_FOUND}.
-- Publishes `schedules` on the wake-up channel: workers re-read the queue's schedules.
local memo = remembered()
if memo then
  return memo
end
local name = ARGV[1] or ''
if name == '' or string.sub(name, 1, 1) == '#' or redis.call('HDEL', K_SCHEDULES, name, '#' .. name) == 0 then
  return remember({NOT_FOUND})
end
redis.call('PUBLISH', K_WAKE, 'schedules')
return remember({OK})
