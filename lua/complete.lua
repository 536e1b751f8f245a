-- COMPLETE: finish jobs whose handler succeeded. Each job must present the token of its
-- current lease; a stale token is refused and changes nothing for that job.
-- ARGV: keep_count, keep_age_ms, then per lease: token, n, then n ids
-- Reply: {OK, status per job (OK or LEASE_LOST)}; a re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local keep_count, keep_age_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local finished, tokens, statuses = check_leases(3)
if not keep_count or keep_count < 0 or not keep_age_ms or keep_age_ms < 0 or not finished then
  return bad('expected keep_count, keep_age_ms, then per lease: token, n, n ids')
end
if #finished > 0 then
  end_attempts(finished, tokens)
  retain(K_COMPLETED, 'processed', finished, now_ms(), keep_count, keep_age_ms)
  return remember(status_reply(statuses))
end
return status_reply(statuses)
