-- WAIT: whether a job finished, and if not, where to wait for it. The job is marked as waited
-- for (a script that finishes a marked job tells the finished stream), and the reply gives the
-- stream's last entry, after which the caller's blocking read starts. Checking and marking in
-- one call leaves no moment in which the job could finish unseen. Marking twice changes
-- nothing, so the call needs no memory.
-- ARGV: id
-- Reply: {OK, 'completed', result ('' if none)} | {OK, 'dead', error} | {OK, 'cancelled'} |
--        {OK, 'waiting', last entry id of the finished stream ('0-0' if none)} | {NOT_FOUND}
local id, refused = job_argument()
if not id then
  return refused
end
if redis.call('ZSCORE', K_COMPLETED, id) then
  return {OK, 'completed', redis.call('HGET', K_RESULTS, id) or ''}
end
if redis.call('ZSCORE', K_DEAD, id) then
  return {OK, 'dead', redis.call('HGET', K_ERRORS, id) or ''}
end
if redis.call('ZSCORE', K_CANCELLED, id) then
  return {OK, 'cancelled'}
end
set_by_id(K_WAITERS, {id, '1'})
local last = redis.call('XREVRANGE', K_FINISHED, '+', '-', 'COUNT', 1)[1]
return {OK, 'waiting', last and last[1] or '0-0'}
