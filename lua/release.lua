-- RELEASE: hand leased jobs back to pending without counting the attempt (graceful shutdown:
-- the worker stopped, the job did not fail). A stale token is refused and changes nothing.
-- ARGV: per job: id, token
-- Reply: {OK, status per job (OK or LEASE_LOST)}
if #ARGV % 2 ~= 0 then
  return bad('expected id/token pairs')
end
local reply = {OK}
local released = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if holds_lease(id, ARGV[i + 1]) then
    released[#released + 1] = id
    reply[#reply + 1] = OK
  else
    reply[#reply + 1] = LEASE_LOST
  end
end
if #released > 0 then
  local now = now_ms()
  for _, id in ipairs(released) do
    local props = parse_props(id)
    end_attempt(id)
    redis.call('HINCRBY', K_ATTEMPTS, id, -1)
    make_available(id, props and props.priority or 0, now)
  end
end
return reply
