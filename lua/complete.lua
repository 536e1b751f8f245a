-- COMPLETE: finish jobs whose handler succeeded. Each job must present the token of its
-- current lease; a stale token is refused and changes nothing for that job.
-- ARGV: keep_count, keep_age_ms, then per lease: token, n, then n ids
-- Reply: {OK, status per job (OK or LEASE_LOST)}
local keep_count, keep_age_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local finished, tokens, statuses = check_leases(3)
if not keep_count or keep_count < 0 or not keep_age_ms or keep_age_ms < 0 or not finished then
  return bad('expected keep_count, keep_age_ms, then per lease: token, n, n ids')
end
if #finished > 0 then
  local now = now_ms()
  -- A string once, not a number formatted again for every job.
  local at = tostring(int(now))
  local scored = {}
  for i, id in ipairs(finished) do
    scored[2 * i - 1] = at
    scored[2 * i] = id
  end
  end_attempts(finished, tokens)
  variadic('ZADD', K_COMPLETED, scored)
  redis.call('HINCRBY', K_META, 'processed', #finished)
  trim(K_COMPLETED, keep_count, keep_age_ms, now)
end
return status_reply(statuses)
