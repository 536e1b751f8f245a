-- PUSH: enqueue a bulk of jobs (one job is a bulk of one), all or none.
-- ARGV: count, then per job: id, envelope, props, when
--   props: "priority|max_attempts|f|base_ms|0|0" (fixed backoff) or
--          "priority|max_attempts|e|base_ms|cap_ms|jitter(0/1)" (exponential)
--   when:  "" (now), "+<ms>" (after a delay) or "@<unix ms>" (at a time; past means now)
-- Reply: {OK, created...} with 1 for a new job and 0 for an id that already exists (nothing
-- written for it), or {BAD_ARGUMENT, message} with nothing written at all.
local FIELDS = 4
local count = tonumber(ARGV[1])
if not count or count < 1 or #ARGV ~= 1 + count * FIELDS then
  return bad('expected a job count and ' .. FIELDS .. ' fields per job')
end

-- Jobs of one bulk nearly always share their properties: each distinct string is checked once.
local priority_of_props = {}
local function check_props(props)
  local priority = priority_of_props[props]
  if priority then
    return priority
  end
  local p, max_attempts = string.match(props, '^(%-?%d+)|(%d+)|[fe]|%d+|%d+|[01]$')
  p = tonumber(p)
  if not p or #props > 64 or math.abs(p) > PRIORITY_LIMIT or tonumber(max_attempts) < 1 then
    return nil
  end
  priority_of_props[props] = p
  return p
end

local ids = {}
for i = 1, count do
  ids[i] = ARGV[2 + (i - 1) * FIELDS]
end
local existing = hmget(K_JOBS, ids)

local new, priorities, dues = {}, {}, {}
local seen = {}
for i = 1, count do
  local at = 2 + (i - 1) * FIELDS
  local id, envelope, props, when = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if id == '' then return bad('job ' .. i .. ': empty id') end
  if envelope == '' then return bad('job ' .. i .. ': empty envelope') end
  priorities[i] = check_props(props)
  if not priorities[i] then
    return bad('job ' .. i .. ': malformed properties (priority within +/-' .. PRIORITY_LIMIT
      .. ', max_attempts >= 1, backoff f or e)')
  end
  if when ~= '' then
    local mode, ms = string.match(when, '^([+@])(%d+)$')
    if not mode then
      return bad('job ' .. i .. ': malformed run time')
    end
    dues[i] = {mode, tonumber(ms)}
  end
  new[i] = not seen[id] and not existing[i]
  seen[id] = true
end

local now = now_ms()
local created = int(now) .. '|'
local reply = {OK}
local records, props = {}, {}
local ready, ready_priorities = {}, {}
local later, later_dues = {}, {}
for i = 1, count do
  reply[i + 1] = new[i] and 1 or 0
  if new[i] then
    local at = 2 + (i - 1) * FIELDS
    local id = ARGV[at]
    records[#records + 1] = id
    records[#records + 1] = ARGV[at + 1]
    props[#props + 1] = id
    props[#props + 1] = created .. ARGV[at + 2]
    local due = now
    if dues[i] then
      due = dues[i][1] == '+' and now + dues[i][2] or dues[i][2]
    end
    if due > now then
      later[#later + 1] = id
      later_dues[#later_dues + 1] = due
    else
      ready[#ready + 1] = id
      ready_priorities[#ready_priorities + 1] = priorities[i]
    end
  end
end
if #records > 0 then
  set_by_id(K_JOBS, records)
  set_by_id(K_PROPS, props)
  make_available(ready, ready_priorities, nil)
  schedule(K_SCHEDULED, later, later_dues)
  redis.call('HINCRBY', K_META, 'enqueued', #records / 2)
end
return reply
