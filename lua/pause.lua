-- PAUSE: workers lease nothing from a paused queue; jobs still enqueue, leases still finish. A
-- queue with no keys yet is paused ahead of its first job. A re-sent call gets the first answer.
-- Reply: {OK, 'paused' | 'already' (it was paused) | 'ahead' (it had no keys: none of its jobs
--         exist yet)}
local memo = remembered()
if memo then
  return memo
end
local outcome = 'paused'
if redis.call('HLEN', K_META) == 0 then
  outcome = 'ahead'
elseif redis.call('HGET', K_META, 'paused') == '1' then
  outcome = 'already'
end
redis.call('HSET', K_META, 'paused', '1')
return remember({OK, outcome})
