-- RATE LIMIT (script library): check and consume in one call, on a sliding window (see
-- sliding_window.lua, which the queue's own rate limit uses too).
-- KEYS[1]: the window (a sorted set; any key, yours to name)
-- ARGV: limit (units per window), window_ms, burst (1..limit), cost (units this call takes)
-- Reply: {allowed (0/1), remaining (units that would fit now), retry_after_ms (until a call of
-- the same cost fits: 0 if it fits now)}, or {-1, message} for bad arguments (nothing written).
local limit, window_ms, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function whole(n, least)
  return n and n % 1 == 0 and n >= least
end
if #KEYS ~= 1 or not whole(limit, 1) or not whole(window_ms, 1) or not whole(burst, 1) or burst > limit
    or not whole(cost, 1) or cost > burst then
  return {-1, 'expected one key, then limit >= 1, window_ms >= 1, burst in 1..limit, cost in 1..burst'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local took, remaining, wait = sliding_window_take(KEYS[1], limit, window_ms, burst, cost, false, now, cost)
return {took > 0 and 1 or 0, remaining, wait}
