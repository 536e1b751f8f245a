-- RESUME: undo PAUSE and wake the workers that idled while the queue was paused. The flag is
-- removed rather than set to 0, so resuming a queue that has no keys creates none (the client
-- refuses an unknown queue first). A re-sent call gets the first answer.
-- Reply: {OK, was paused (0/1)}
local memo = remembered()
if memo then
  return memo
end
local was_paused = redis.call('HDEL', K_META, 'paused')
if pending_count() > 0 or earliest_due() then
  wake()
end
if was_paused == 0 then
  -- Nothing changed: nothing to remember either.
  return {OK, 0}
end
return remember({OK, 1})
