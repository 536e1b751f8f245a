-- RELEASE: hand leased jobs back to pending without counting the attempt (graceful shutdown:
-- the worker stopped, the job did not fail). A stale token is refused and changes nothing.
-- ARGV: per job: id, token
-- Reply: {OK, status per job (OK or LEASE_LOST)}
if #ARGV % 2 ~= 0 then
  return bad('expected id/token pairs')
end
local released, statuses = check_leases(1)
if #released > 0 then
  local attempts = hmget(K_ATTEMPTS, released)
  local uncounted = {}
  for i, id in ipairs(released) do
    uncounted[2 * i - 1] = id
    uncounted[2 * i] = math.max(0, (tonumber(attempts[i]) or 0) - 1)
  end
  end_attempts(released)
  variadic('HSET', K_ATTEMPTS, uncounted)
  make_available(released, priorities_of(released), now_ms())
end
return status_reply(statuses)
