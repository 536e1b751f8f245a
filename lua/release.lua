-- RELEASE: hand leased jobs back to pending without counting the attempt (graceful shutdown:
-- the worker stopped, the job did not fail). A stale token is refused and changes nothing.
-- ARGV: per lease: token, n, then n ids
-- Reply: {OK, status per job (OK or LEASE_LOST)}; a re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local released, tokens, statuses = check_leases(1)
if not released then
  return bad('expected per lease: token, n, n ids')
end
if #released > 0 then
  end_attempts(released, tokens)
  make_available(released, priorities_of(released), now_ms())
  return remember(status_reply(statuses))
end
return status_reply(statuses)
