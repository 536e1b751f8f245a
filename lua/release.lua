-- RELEASE: hand leased jobs back to pending without counting the attempt (graceful shutdown:
-- the worker stopped, the job did not fail). A stale token is refused and changes nothing.
-- ARGV: per job: id, token
-- Reply: {OK, status per job (OK or LEASE_LOST)}
if #ARGV % 2 ~= 0 then
  return bad('expected id/token pairs')
end
local released, tokens, statuses = check_leases(1)
if #released > 0 then
  end_attempts(released, tokens)
  make_available(released, priorities_of(released), now_ms())
end
return status_reply(statuses)
