-- PUSH: enqueue a bulk of jobs (one job is a bulk of one), all or none.
-- ARGV: count, then runs of consecutive jobs that share properties and run time:
--   n, props, when, then n times: id, envelope
--   props: "priority|max_attempts|f|base_ms|0|0" (fixed backoff) or
--          "priority|max_attempts|e|base_ms|cap_ms|jitter(0/1)" (exponential)
--   when:  "" (now), "+<ms>" (after a delay) or "@<unix ms>" (at a time; past means now)
-- A bulk's jobs nearly always share both, so most bulks are one run: two values per job.
-- Jobs of a group (see K_GROUP_JOBS) have "|G<group>\0" after the backoff; a group is 1 to
-- GROUP_NAME_LIMIT bytes, without NUL.
-- A job with a unique key is a run of one whose props go on with "|<mode><ms>|<key>": mode f
-- (the key is held for ms after enqueue), c (held until the job finishes) or d (debounce: held
-- while the job waits; a new push of the key replaces the waiting job).
-- Reply: {OK, created...} with 1 for a new job, 0 for an id that already exists (nothing
-- written for it) and the id of the job holding the key for a duplicate by unique key
-- (nothing written for it), or {BAD_ARGUMENT, message} with nothing written at all. A re-sent
-- push gets the first delivery's answer.
local memo = remembered()
if memo then
  return memo
end
local count = tonumber(ARGV[1])
if not count or count < 1 or count > BULK_LIMIT then
  return bad('expected a job count from 1 to ' .. BULK_LIMIT .. ', then runs of jobs')
end

local runs, ids = {}, {}
local at = 2
while at <= #ARGV do
  local n, props, when = tonumber(ARGV[at]), ARGV[at + 1], ARGV[at + 2]
  if not n or n < 1 or n % 1 ~= 0 or not when or at + 2 + 2 * n > #ARGV then
    return bad('malformed run of jobs at argument ' .. at)
  end
  local group = nil
  local before, named, after = string.match(props, '^(%-?%d+|%d+|[fe]|%d+|%d+|[01])|G([^%z]*)%z(.*)$')
  if before then
    if #named < 1 or #named > GROUP_NAME_LIMIT then
      return bad('job ' .. (#ids + 1) .. ': a group name is 1 to ' .. GROUP_NAME_LIMIT .. ' bytes')
    end
    props, group = before .. after, named
  end
  local p, max_attempts = string.match(props, '^(%-?%d+)|(%d+)|[fe]|%d+|%d+|[01]$')
  local unique = nil
  if not p then
    local base, mode, ms, key = string.match(props, '^(%-?%d+|%d+|[fe]|%d+|%d+|[01])|([fcd])(%d+)|(.+)$')
    if base then
      if n ~= 1 then
        return bad('job ' .. (#ids + 1) .. ': a job with a unique key is a run of one')
      end
      props = base
      unique = {mode = mode, ms = tonumber(ms), key = key}
      p, max_attempts = string.match(base, '^(%-?%d+)|(%d+)|')
    end
  end
  p = tonumber(p)
  if not p or #props > 64 or math.abs(p) > PRIORITY_LIMIT or tonumber(max_attempts) < 1 then
    return bad('job ' .. (#ids + 1) .. ': malformed properties (priority within +/-' .. PRIORITY_LIMIT
      .. ', max_attempts >= 1, backoff f or e)')
  end
  local due = nil
  if when ~= '' then
    local mode, ms = string.match(when, '^([+@])(%d+)$')
    if not mode then
      return bad('job ' .. (#ids + 1) .. ': malformed run time')
    end
    due = {mode, tonumber(ms)}
  end
  local first = at + 3
  for j = first, first + 2 * n - 1, 2 do
    if ARGV[j] == '' then return bad('job ' .. (#ids + 1) .. ': empty id') end
    if ARGV[j + 1] == '' then return bad('job ' .. (#ids + 1) .. ': empty envelope') end
    ids[#ids + 1] = ARGV[j]
  end
  runs[#runs + 1] = {first = first, n = n, priority = p, props = props, due = due, unique = unique, group = group}
  at = first + 2 * n
end
if #ids ~= count then
  return bad('expected ' .. count .. ' jobs, got ' .. #ids)
end
local existing = hmget(K_JOBS, ids)

local now = now_ms()
local created = int(now)
local reply = {OK}
local records, priorities, groups = {}, {}, {}
local ready, ready_priorities = {}, {}
local later, later_dues = {}, {}
local seen = {}
-- Unique keys: the job holding each key now (false when none), jobs replaced by a debounce,
-- and what to record for the jobs created with a key.
local holders, replaced, claims = {}, {}, {}
-- The job holding a unique key, if the key is still held; `debounced` when the holder is a
-- waiting job of a debounce, which a new push of the key replaces.
local function holder_of(key)
  if holders[key] ~= nil then
    return holders[key], false
  end
  local held = redis.call('HGET', K_UNIQUE, 'k:' .. key)
  if not held then
    return nil, false
  end
  local mode, held_until, id = string.match(held, '^(%a)|(%d+)|(.*)$')
  if mode == 'f' then
    return tonumber(held_until) > now and id or nil, false
  elseif mode == 'c' then
    local finished = redis.call('HEXISTS', K_JOBS, id) == 0 or redis.call('ZSCORE', K_COMPLETED, id)
      or redis.call('ZSCORE', K_DEAD, id)
    return not finished and id or nil, false
  elseif mode == 'd' and redis.call('ZSCORE', K_SCHEDULED, id) then
    return id, true
  end
  return nil, false
end
local i = 0
for _, run in ipairs(runs) do
  local run_props = record_head(created, run.props)
  local run_priority = run.priority ~= 0 and tostring(run.priority) or nil
  local due = now
  if run.due then
    due = run.due[1] == '+' and now + run.due[2] or run.due[2]
  end
  for j = run.first, run.first + 2 * run.n - 1, 2 do
    i = i + 1
    local id = ARGV[j]
    local unique = run.unique
    local holder, debounced = nil, false
    if unique then
      holder, debounced = holder_of(unique.key)
    end
    if existing[i] or seen[id] then
      reply[i + 1] = 0
    elseif holder and not (debounced and unique.mode == 'd') then
      reply[i + 1] = holder
    else
      if holder then
        replaced[#replaced + 1] = holder
      end
      if unique then
        holders[unique.key] = id
        claims[#claims + 1] = {key = unique.key, mode = unique.mode, ms = unique.ms, id = id}
      end
      seen[id] = true
      reply[i + 1] = 1
      records[#records + 1] = id
      records[#records + 1] = run_props .. ARGV[j + 1]
      if run.group then
        groups[#groups + 1] = id
        groups[#groups + 1] = run.group .. '\0'
      end
      if run_priority then
        priorities[#priorities + 1] = id
        priorities[#priorities + 1] = run_priority
      end
      if due > now then
        later[#later + 1] = id
        later_dues[#later_dues + 1] = due
      else
        ready[#ready + 1] = id
        ready_priorities[#ready_priorities + 1] = run.priority
      end
    end
  end
end
if #records > 0 then
  if #replaced > 0 then
    for _, old in ipairs(replaced) do
      redis.call('ZREM', K_SCHEDULED, old)
    end
    forget(replaced)
  end
  for _, claim in ipairs(claims) do
    local held_until = claim.mode == 'f' and now + claim.ms or 0
    redis.call('HSET', K_UNIQUE, 'k:' .. claim.key, claim.mode .. '|' .. int(held_until) .. '|' .. claim.id)
    if claim.mode == 'f' then
      redis.call('ZADD', K_UNIQUE_EXPIRY, int(held_until), claim.key)
    else
      redis.call('HSET', K_UNIQUE, 'i:' .. claim.id, claim.key)
    end
  end
  if #claims > 0 then
    -- Keys held for a time are forgotten a few at a time once their time is up.
    local expired = redis.call('ZRANGEBYSCORE', K_UNIQUE_EXPIRY, '-inf', int(now), 'LIMIT', 0, 20)
    for _, key in ipairs(expired) do
      local held = redis.call('HGET', K_UNIQUE, 'k:' .. key)
      local mode, held_until = string.match(held or '', '^(%a)|(%d+)|')
      if mode == 'f' and tonumber(held_until) <= now then
        redis.call('HDEL', K_UNIQUE, 'k:' .. key)
      end
      redis.call('ZREM', K_UNIQUE_EXPIRY, key)
    end
  end
  set_by_id(K_JOBS, records)
  set_by_id(K_PRIORITIES, priorities)
  set_by_id(K_GROUP_OF, groups)
  make_available(ready, ready_priorities, nil)
  schedule(K_SCHEDULED, later, later_dues)
  redis.call('HINCRBY', K_META, 'enqueued', #records / 2 - #replaced)
  if events_on() then
    local created = {}
    for j = 1, #records, 2 do
      created[#created + 1] = records[j]
    end
    emit('enqueued', created, 0)
  end
  return remember(reply)
end
return reply
