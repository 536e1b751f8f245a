-- PAUSE: workers lease nothing from a paused queue; jobs still enqueue, leases still finish.
-- Reply: {OK}
redis.call('HSET', K_META, 'paused', '1')
return {OK}
