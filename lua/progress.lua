-- PROGRESS: a running attempt records how far it got (any JSON), shown by `job` and, when the
-- queue keeps events, as a progress event. Only the attempt holding the job's lease can write:
-- a stale attempt's report is refused.
-- ARGV: id, token, progress (JSON)
-- Reply: {OK} | {LEASE_LOST}; a re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local id, token, progress = ARGV[1], ARGV[2], ARGV[3]
if #ARGV ~= 3 or progress == '' then
  return bad('expected id, token, progress')
end
if id == PIN_FIELD or redis.call('HGET', K_TOKENS, id) ~= token then
  return {LEASE_LOST}
end
set_by_id(K_PROGRESS, {id, progress})
emit('progress', {id}, attempts_of({id})[1], progress)
return remember({OK})
