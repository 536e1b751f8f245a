-- The sliding-window limiter both the script library (rate_limit.lua) and the queue's own rate
-- limit (pop.lua) are built on: one implementation, included by both.
--
-- A window is a sorted set of the units taken in the last `window_ms`, one member per unit,
-- scored by the ms it was taken at. It allows at most `limit` units in any window of
-- `window_ms`, and at most `burst` (1..limit) of them within any `window_ms * burst / limit`:
-- with burst = limit it is a plain sliding window; a smaller burst spreads the units out.
-- Memory: at most `limit` members per window.

-- The ms at which `needed` more units fit under `cap` in the window of length `span` ending now,
-- given that `used` units (the entries since `since`, excluded) are in it: the moment the
-- (used + needed - cap)-th oldest of them leaves it.
local function sliding_window_free_at(key, since, used, needed, cap, span)
  local k = used + needed - cap
  if k <= 0 then
    return nil
  end
  local entry = redis.call('ZRANGEBYSCORE', key, '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
  return tonumber(entry[2]) + span
end

-- Takes up to `want` units at `now` (ms): all of them or none, or as many as fit when `partial`.
-- Returns how many it took, how many more would fit now (remaining), and in how many ms a call
-- for `again` units would fit (0 if it fits now; -1 if it never can: more than burst).
local function sliding_window_take(key, limit, window_ms, burst, want, partial, now, again)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
  local used = redis.call('ZCARD', key)
  local room = limit - used
  local burst_ms = window_ms
  local recent = used
  if burst < limit then
    burst_ms = math.max(1, math.floor(window_ms * burst / limit))
    recent = redis.call('ZCOUNT', key, '(' .. (now - burst_ms), '+inf')
    room = math.min(room, burst - recent)
  end
  room = math.max(0, room)
  local took = 0
  if want <= room then
    took = want
  elseif partial then
    took = room
  end
  if took > 0 then
    -- Members are unique per ms: the ones scored `now` are exactly now:1 .. now:k.
    local first = redis.call('ZCOUNT', key, now, now)
    local scored = {}
    for i = 1, took do
      scored[2 * i - 1] = now
      scored[2 * i] = now .. ':' .. (first + i)
    end
    for i = 1, #scored, 512 do
      redis.call('ZADD', key, unpack(scored, i, math.min(i + 511, #scored)))
    end
    used = used + took
    recent = recent + took
    -- The newest units leave the window in window_ms: so does the key then.
    redis.call('PEXPIRE', key, window_ms)
  end
  local wait = 0
  if again > burst then
    wait = -1
  elseif room - took < again then
    local at = sliding_window_free_at(key, now - window_ms, used, again, limit, window_ms) or now
    if burst < limit then
      at = math.max(at, sliding_window_free_at(key, now - burst_ms, recent, again, burst, burst_ms) or now)
    end
    wait = math.max(1, at - now)
  end
  return took, room - took, wait
end
