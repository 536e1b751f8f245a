-- GROUPS: the queue's busiest groups (read-only): those with jobs ready or running.
-- ARGV: limit (how many to list, 1 to 1000)
-- Reply: {OK, groups with ready jobs, groups with running jobs, then per group listed, busiest
-- first (ready + running, then name): name, ready, running, weight ('' = 1), state ('ready': in
-- line for a turn, 'limited': parked at a group limit, 'running': nothing ready)}.
-- Looks at up to 1000 groups of the line, 1000 parked and every running one: on a queue with
-- more groups in line, the listing is of a sample, which the counts say.
local limit = tonumber(ARGV[1])
if #ARGV ~= 1 or not limit or limit < 1 or limit > 1000 or limit % 1 ~= 0 then
  return bad('expected limit from 1 to 1000')
end
local SAMPLE = 1000
local seen, names = {}, {}
local function consider(group, state)
  if not seen[group] then
    seen[group] = state
    names[#names + 1] = group
  end
end
for _, group in ipairs(redis.call('ZRANGE', K_GROUP_PARKED, 0, SAMPLE - 1)) do
  consider(group, 'limited')
end
for _, group in ipairs(redis.call('ZRANGE', K_GROUP_TURNS, 0, SAMPLE - 1)) do
  consider(group, 'ready')
end
local state = redis.call('HGETALL', K_GROUP_STATE)
local active, weight = {}, {}
for i = 1, #state, 2 do
  local kind, group = string.match(state[i], '^(%a):(.*)$')
  if kind == 'a' then
    active[group] = tonumber(state[i + 1])
    consider(group, 'running')
  elseif kind == 'w' then
    weight[group] = state[i + 1]
  end
end
local rows, running = {}, 0
for _, group in ipairs(names) do
  local first, last = group_bounds(group)
  local ready = redis.call('ZLEXCOUNT', K_GROUP_JOBS, first, last)
  local busy = active[group] or 0
  if busy > 0 then
    running = running + 1
  end
  if ready + busy > 0 then
    local row_state = seen[group]
    if row_state == 'ready' and ready == 0 then
      row_state = 'running'
    end
    rows[#rows + 1] = {group, ready, busy, weight[group] or '', row_state}
  end
end
table.sort(rows, function(a, b)
  if a[2] + a[3] ~= b[2] + b[3] then
    return a[2] + a[3] > b[2] + b[3]
  end
  return a[1] < b[1]
end)
local reply = {OK, redis.call('ZCARD', K_GROUP_TURNS) + redis.call('ZCARD', K_GROUP_PARKED), running}
for i = 1, math.min(limit, #rows) do
  for _, value in ipairs(rows[i]) do
    reply[#reply + 1] = value
  end
end
return reply
