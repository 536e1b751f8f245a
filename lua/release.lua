-- RELEASE: hand leased jobs back to pending without counting the attempt (graceful shutdown:
-- the worker stopped, the job did not fail). A stale token is refused and changes nothing.
-- ARGV: per lease: token, n, then n ids
-- Reply: {OK, status per job (OK or LEASE_LOST)}
local released, tokens, statuses = check_leases(1)
if not released then
  return bad('expected per lease: token, n, n ids')
end
if #released > 0 then
  end_attempts(released, tokens)
  make_available(released, priorities_of(released), now_ms())
end
return status_reply(statuses)
