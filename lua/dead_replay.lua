-- DEAD_REPLAY: move dead jobs back to pending with their attempts reset. The last error is kept
-- for the record until the job fails again.
-- ARGV: 'ids', id... | 'oldest', limit
-- Reply: {OK, replayed, then the ids that were not in the dead letter}. An id named twice is
-- replayed once. A re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local mode = ARGV[1]
local ids
if mode == 'ids' then
  ids = {}
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
elseif mode == 'oldest' and tonumber(ARGV[2]) and tonumber(ARGV[2]) >= 1 and #ARGV == 2 then
  ids = redis.call('ZRANGE', K_DEAD, 0, tonumber(ARGV[2]) - 1)
else
  return bad("expected 'ids' followed by ids, or 'oldest' and a limit")
end

local replay, missing, seen = {}, {}, {}
for _, id in ipairs(ids) do
  if seen[id] then
    -- Already counted (replayed or missing) under its first mention.
  elseif redis.call('ZSCORE', K_DEAD, id) then
    seen[id] = true
    replay[#replay + 1] = id
  else
    seen[id] = true
    missing[#missing + 1] = id
  end
end
if #replay > 0 then
  variadic('ZREM', K_DEAD, replay)
  variadic('HDEL', K_FAILURES, replay)
  make_available(replay, priorities_of(replay), now_ms())
end
local reply = {OK, #replay}
for _, id in ipairs(missing) do
  reply[#reply + 1] = id
end
if #replay > 0 then
  return remember(reply)
end
return reply
