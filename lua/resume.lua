-- RESUME: undo PAUSE and wake the workers that idled while the queue was paused.
-- Reply: {OK}
redis.call('HSET', K_META, 'paused', '0')
if pending_count() > 0 or earliest_due() then
  wake()
end
return {OK}
