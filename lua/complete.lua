-- COMPLETE: finish jobs whose handler succeeded. Each job must present the token of its
-- current lease; a stale token is refused and changes nothing for that job.
-- ARGV: keep_count, keep_age_ms, then per job: id, token
-- Reply: {OK, status per job (OK or LEASE_LOST)}
local keep_count, keep_age_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
if not keep_count or keep_count < 0 or not keep_age_ms or keep_age_ms < 0 or #ARGV % 2 ~= 0 then
  return bad('expected keep_count, keep_age_ms, then id/token pairs')
end

local reply = {OK}
local finished = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if holds_lease(id, ARGV[i + 1]) then
    finished[#finished + 1] = id
    reply[#reply + 1] = OK
  else
    reply[#reply + 1] = LEASE_LOST
  end
end

if #finished > 0 then
  local now = now_ms()
  for _, id in ipairs(finished) do
    end_attempt(id)
    redis.call('ZADD', K_COMPLETED, int(now), id)
  end
  redis.call('HINCRBY', K_META, 'processed', #finished)
  trim(K_COMPLETED, keep_count, keep_age_ms, now)
end
return reply
