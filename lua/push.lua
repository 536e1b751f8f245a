-- PUSH: enqueue a bulk of jobs (one job is a bulk of one), all or none.
-- ARGV: count, then runs of consecutive jobs that share properties and run time:
--   n, props, when, then n times: id, envelope
--   props: "priority|max_attempts|f|base_ms|0|0" (fixed backoff) or
--          "priority|max_attempts|e|base_ms|cap_ms|jitter(0/1)" (exponential)
--   when:  "" (now), "+<ms>" (after a delay) or "@<unix ms>" (at a time; past means now)
-- A bulk's jobs nearly always share both, so most bulks are one run: two values per job.
-- Reply: {OK, created...} with 1 for a new job and 0 for an id that already exists (nothing
-- written for it), or {BAD_ARGUMENT, message} with nothing written at all. A re-sent push gets
-- the first delivery's answer.
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
  local p, max_attempts = string.match(props, '^(%-?%d+)|(%d+)|[fe]|%d+|%d+|[01]$')
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
  runs[#runs + 1] = {first = first, n = n, priority = p, props = props, due = due}
  at = first + 2 * n
end
if #ids ~= count then
  return bad('expected ' .. count .. ' jobs, got ' .. #ids)
end
local existing = hmget(K_JOBS, ids)

local now = now_ms()
local created = int(now) .. '|'
local reply = {OK}
local records, priorities = {}, {}
local ready, ready_priorities = {}, {}
local later, later_dues = {}, {}
local seen = {}
local i = 0
for _, run in ipairs(runs) do
  local run_props = created .. run.props .. '|'
  local run_priority = run.priority ~= 0 and tostring(run.priority) or nil
  local due = now
  if run.due then
    due = run.due[1] == '+' and now + run.due[2] or run.due[2]
  end
  for j = run.first, run.first + 2 * run.n - 1, 2 do
    i = i + 1
    local id = ARGV[j]
    if existing[i] or seen[id] then
      reply[i + 1] = 0
    else
      seen[id] = true
      reply[i + 1] = 1
      records[#records + 1] = id
      records[#records + 1] = run_props .. ARGV[j + 1]
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
  set_by_id(K_JOBS, records)
  set_by_id(K_PRIORITIES, priorities)
  make_available(ready, ready_priorities, nil)
  schedule(K_SCHEDULED, later, later_dues)
  redis.call('HINCRBY', K_META, 'enqueued', #records / 2)
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
