-- Fair share between groups (see K_GROUP_JOBS in the prelude), for pop.lua: which ready jobs a
-- pop takes when some of them belong to groups.
--
-- Groups in line take turns by a virtual clock (stride scheduling): the group with the lowest
-- time goes next and takes jobs until its time passes the next group's, each job advancing it
-- by 1 / weight. Jobs outside groups take turns as one more group of weight 1 (their time is the
-- meta field `ungrouped_turn`). A group that joins the line starts at the time of the last turn
-- given, so it waits about one turn of each group in line, whatever their backlogs. A queue
-- whose line is empty takes jobs as it always does (take_pending): no cost without groups.

-- Starts of `group` in the window of `window_ms` before `now`, dropping the older ones; the
-- members of one group are contiguous in K_GROUP_RATE, ordered by time.
local function group_rate_used(group, window_ms, now)
  local first, last = group_bounds(group)
  local cutoff = group .. '\0' .. string.format('%013d', now - window_ms + 1)
  redis.call('ZREMRANGEBYLEX', K_GROUP_RATE, first, '(' .. cutoff)
  return redis.call('ZLEXCOUNT', K_GROUP_RATE, first, last)
end

-- Records `n` starts of `group` at `now`; the group's entries expire with the window.
local function group_rate_record(group, n, window_ms, now)
  local stamp = group .. '\0' .. string.format('%013d', now) .. ':'
  local same_ms = redis.call('ZLEXCOUNT', K_GROUP_RATE, '[' .. stamp, '(' .. stamp .. ';')
  local members = {}
  for i = 1, n do
    members[2 * i - 1] = 0
    members[2 * i] = stamp .. (same_ms + i)
  end
  variadic('ZADD', K_GROUP_RATE, members)
  redis.call('ZADD', K_GROUP_RATE_EXPIRY, int(now + window_ms), group)
end

-- When `group`, at its rate limit, may start a job again: when its oldest start in the window
-- leaves it.
local function group_rate_free_at(group, window_ms, now)
  local first, last = group_bounds(group)
  local oldest = redis.call('ZRANGEBYLEX', K_GROUP_RATE, first, last, 'LIMIT', 0, 1)[1]
  local at = oldest and tonumber(string.match(oldest, '%z(%d+):%d+$'))
  return math.max(now + 1, (at or now) + window_ms)
end

-- Forgets the rate windows of a few groups that have not started a job for a whole window, so
-- that groups that come and go leave nothing behind.
local function group_rate_sweep(now)
  local stale = redis.call('ZRANGEBYSCORE', K_GROUP_RATE_EXPIRY, '-inf', int(now), 'LIMIT', 0, 10)
  for _, group in ipairs(stale) do
    local first, last = group_bounds(group)
    redis.call('ZREMRANGEBYLEX', K_GROUP_RATE, first, last)
    redis.call('ZREM', K_GROUP_RATE_EXPIRY, group)
  end
end

-- Groups parked at their rate limit whose time has come get back in line, at most `limit`.
local function unpark_due_groups(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K_GROUP_PARKED, '-inf', int(now), 'LIMIT', 0, limit)
  if #due > 0 then
    variadic('ZREM', K_GROUP_PARKED, due)
    for _, group in ipairs(due) do
      admit_group(group)
    end
  end
end

-- How many jobs a turn takes: until its taker's time, advancing by 1 / weight a job, reaches
-- the next in line's (`ahead` later); at least one, so that equal times alternate.
local function turn_length(ahead, weight)
  return math.max(1, math.ceil(ahead * weight - 1e-9))
end

-- Takes up to `count` ready jobs at `now`, grouped or not, in fair turns; `group_rate` is the
-- meta field ("N/window_ms" or nil), `group_concurrency` the other (a number or nil).
local function take_ready(count, now, group_rate, group_concurrency)
  if redis.call('ZCARD', K_GROUP_TURNS) == 0 then
    return take_pending(count)
  end
  local rate_limit, rate_window = nil, nil
  if group_rate then
    local n, ms = string.match(group_rate, '^(%d+)/(%d+)$')
    rate_limit, rate_window = tonumber(n), tonumber(ms)
  end
  local clock = group_turn_clock()
  local meta = redis.call('HMGET', K_META, 'ungrouped_turn', 'weighted')
  local ungrouped_turn = math.max(tonumber(meta[1]) or 0, clock)
  -- Weights are looked up only on a queue that has ever set one (see limits.lua).
  local weighted = meta[2] == '1'
  -- The active counts are a hash that lookups find in O(1) however few groups run.
  pin(K_GROUP_STATE)
  local ungrouped_left = ungrouped_count()
  local ids = {}
  -- Every turn takes a job or takes its group out of line; the bound only guards against a
  -- line whose groups all turn out to be empty.
  local turns_left = count + 64
  while #ids < count and turns_left > 0 do
    turns_left = turns_left - 1
    local line = redis.call('ZRANGE', K_GROUP_TURNS, 0, 1, 'WITHSCORES')
    local group, at, next_at = line[1], tonumber(line[2]), tonumber(line[4])
    if ungrouped_left > 0 and (not group or ungrouped_turn <= at) then
      local n = count - #ids
      if group then
        n = math.min(n, turn_length(at - ungrouped_turn, 1))
      end
      local taken = take_pending(n)
      for _, id in ipairs(taken) do
        ids[#ids + 1] = id
      end
      clock = math.max(clock, ungrouped_turn)
      ungrouped_turn = ungrouped_turn + #taken
      ungrouped_left = #taken < n and 0 or ungrouped_left - #taken
    elseif group then
      local weight = weighted and tonumber(redis.call('HGET', K_GROUP_STATE, 'w:' .. group)) or 1
      -- This turn lasts until the group's time passes the next in line's (or the ungrouped jobs').
      local n = count - #ids
      local until_at = next_at
      if ungrouped_left > 0 and (not until_at or ungrouped_turn < until_at) then
        until_at = ungrouped_turn
      end
      if until_at then
        n = math.min(n, turn_length(until_at - at, weight))
      end
      local active = 0
      if group_concurrency then
        active = tonumber(redis.call('HGET', K_GROUP_STATE, 'a:' .. group)) or 0
        n = math.min(n, group_concurrency - active)
      end
      local rate_room = nil
      if rate_limit and n > 0 then
        rate_room = rate_limit - group_rate_used(group, rate_window, now)
        n = math.min(n, rate_room)
      end
      local first, last = group_bounds(group)
      local members = {}
      if n > 0 then
        -- One more than taken: whether the group still has jobs after this turn.
        members = redis.call('ZRANGEBYLEX', K_GROUP_JOBS, first, last, 'LIMIT', 0, n + 1)
      end
      local taken = math.min(n, #members)
      if taken > 0 then
        redis.call('ZREMRANGEBYLEX', K_GROUP_JOBS, first, '[' .. members[taken])
        for i = 1, taken do
          ids[#ids + 1] = group_member_id(members[i])
        end
        redis.call('HINCRBY', K_GROUP_STATE, 'a:' .. group, taken)
        if rate_limit then
          group_rate_record(group, taken, rate_window, now)
        end
      end
      clock = math.max(clock, at)
      if n > 0 and #members <= taken then
        -- Nothing left (or it was a stale entry): out of line until a job of it becomes ready.
        redis.call('ZREM', K_GROUP_TURNS, group)
      elseif group_concurrency and active + taken >= group_concurrency then
        redis.call('ZREM', K_GROUP_TURNS, group)
        redis.call('ZADD', K_GROUP_PARKED, '+inf', group)
        any_parked = true
      elseif rate_limit and rate_room and rate_room <= taken then
        redis.call('ZREM', K_GROUP_TURNS, group)
        redis.call('ZADD', K_GROUP_PARKED, int(group_rate_free_at(group, rate_window, now)), group)
        any_parked = true
      else
        redis.call('ZADD', K_GROUP_TURNS, at + taken / weight, group)
      end
    else
      break
    end
  end
  redis.call('HSET', K_META, 'turn', clock, 'ungrouped_turn', ungrouped_turn)
  if rate_limit or redis.call('ZCARD', K_GROUP_RATE_EXPIRY) > 0 then
    group_rate_sweep(now)
  end
  return ids
end
