-- CRON_LIST: every schedule of the queue, and the server's time (workers sleep until the next
-- due time by it). No ARGV.
-- Reply: {OK, now ms, then per schedule: name, definition, next due ms}.
local reply = {OK, int(now_ms())}
local fields = redis.call('HGETALL', K_SCHEDULES)
local due = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 1) == '#' then
    due[string.sub(fields[i], 2)] = fields[i + 1]
  end
end
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 1) ~= '#' then
    reply[#reply + 1] = name
    reply[#reply + 1] = fields[i + 1]
    reply[#reply + 1] = due[name] or '0'
  end
end
return reply
