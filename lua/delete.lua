-- DELETE: remove one job that is waiting (pending, scheduled, retrying) or finished (dead,
-- completed, cancelled), and everything kept about it. A running job (active) is refused: its worker
-- would still run it, and its attempt has to end first.
-- ARGV: id
-- Reply: {OK, state, deleted (1, or 0 when refused because the job is active)} | {NOT_FOUND}
-- A job in the default-priority list is found by LREM, O(its distance from the nearer end of
-- that list); every other state is O(log n) (see unqueue_ready). Callers waiting for the job
-- are told it was deleted. A re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local id, refused = job_argument()
if not id then
  return refused
end
if redis.call('HEXISTS', K_TOKENS, id) == 1 then
  return {OK, 'active', 0}
end
local state, zset = state_among(STATE_SETS, id)
-- Every check is done; the writes follow.
if zset then
  redis.call('ZREM', zset, id)
else
  -- Not leased and in no sorted set keyed by id: it waits in a group's line or the
  -- default-priority list (see job.lua).
  unqueue_ready(id)
  state = 'pending'
end
tell_waiters({id}, 'deleted')
forget({id})
return remember({OK, state, 1})
