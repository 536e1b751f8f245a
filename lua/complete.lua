-- COMPLETE: finish jobs whose handler succeeded, keeping what handlers returned. Each job must
-- present the token of its current lease; a stale token is refused and changes nothing for
-- that job (its result is not kept either).
-- ARGV: keep_count, keep_age_ms, m, then m times: id, result (JSON), then per lease: token, n,
--       then n ids. Jobs without a result are not among the m.
-- Reply: {OK, status per job (OK or LEASE_LOST)}; a re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local keep_count, keep_age_ms, m = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not m or m < 0 or m % 1 ~= 0 or 3 + 2 * m > #ARGV then
  return bad('expected keep_count, keep_age_ms, m, m times id and result, then per lease: token, n, n ids')
end
local finished, tokens, statuses = check_leases(4 + 2 * m)
if not keep_count or keep_count < 0 or not keep_age_ms or keep_age_ms < 0 or not finished then
  return bad('expected keep_count, keep_age_ms, m, m times id and result, then per lease: token, n, n ids')
end
if #finished > 0 then
  end_attempts(finished, tokens)
  if m > 0 then
    local held = {}
    for _, id in ipairs(finished) do
      held[id] = true
    end
    local results = {}
    for j = 4, 3 + 2 * m, 2 do
      if held[ARGV[j]] then
        results[#results + 1] = ARGV[j]
        results[#results + 1] = ARGV[j + 1]
      end
    end
    set_by_id(K_RESULTS, results)
  end
  tell_waiters(finished, 'completed')
  if events_on() then
    emit('completed', finished, attempts_of(finished))
  end
  -- After the results, so that a retention that forgets a job at once forgets its result too.
  retain(K_COMPLETED, 'processed', finished, now_ms(), keep_count, keep_age_ms)
  return remember(status_reply(statuses))
end
return status_reply(statuses)
