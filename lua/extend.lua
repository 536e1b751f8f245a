-- EXTEND: renew the leases of many jobs in one call (one call per worker per heartbeat).
-- ARGV: lease_ms, then per job: id, token
-- Reply: {OK, deadline_ms, status per job (OK or LEASE_LOST)}
local lease_ms = tonumber(ARGV[1])
if not lease_ms or lease_ms < 1 or #ARGV % 2 ~= 1 then
  return bad('expected lease_ms, then id/token pairs')
end
local deadline = int(now_ms() + lease_ms)
local reply = {OK, deadline}
local renew = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if holds_lease(id, ARGV[i + 1]) then
    renew[#renew + 1] = id
    reply[#reply + 1] = OK
  else
    reply[#reply + 1] = LEASE_LOST
  end
end
for _, id in ipairs(renew) do
  redis.call('ZADD', K_ACTIVE, 'XX', deadline, id)
end
return reply
