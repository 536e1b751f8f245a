-- RESUME: undo PAUSE and wake the workers that idled while the queue was paused. The flag is
-- removed rather than set to 0, so resuming a queue that has no keys creates none.
-- Reply: {OK}
redis.call('HDEL', K_META, 'paused')
if pending_count() > 0 or earliest_due() then
  wake()
end
return {OK}
