-- EVENTS: whether the queue keeps an event stream, and how long: every script that changes a
-- job's state then records it there (enqueued, started, completed, failed, retried, dead,
-- cancelled, progress). Off by default (see the README's figures for what it costs).
-- Setting it twice changes nothing, so the call needs no memory.
-- ARGV: max_len (0: keep none; the entries already kept stay until the stream is trimmed)
-- Reply: {OK}
local max_len = tonumber(ARGV[1])
if #ARGV ~= 1 or not max_len or max_len < 0 or max_len % 1 ~= 0 then
  return bad('expected max_len >= 0')
end
if max_len == 0 then
  redis.call('HDEL', K_META, 'events')
else
  redis.call('HSET', K_META, 'events', max_len)
end
return {OK}
