-- PUSH: enqueue a bulk of jobs (one job is a bulk of one), all or none.
-- ARGV: count, then per job: id, envelope, priority, max_attempts, backoff, when
--   backoff: "f|base_ms|0|0" (fixed) or "e|base_ms|cap_ms|jitter(0/1)" (exponential)
--   when:    "" (now), "+<ms>" (after a delay) or "@<unix ms>" (at a time; past means now)
-- Reply: {OK, created...} with 1 for a new job and 0 for an id that already exists (nothing
-- written for it), or {BAD_ARGUMENT, message} with nothing written at all.
local FIELDS = 6
local count = tonumber(ARGV[1])
if not count or count < 1 or #ARGV ~= 1 + count * FIELDS then
  return bad('expected a job count and ' .. FIELDS .. ' fields per job')
end

local jobs = {}
local seen = {}
for i = 0, count - 1 do
  local at = 2 + i * FIELDS
  local id, envelope, priority, max_attempts, backoff, when =
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]
  local n = i + 1
  if id == '' then return bad('job ' .. n .. ': empty id') end
  if envelope == '' then return bad('job ' .. n .. ': empty envelope') end
  if not is_int(priority) or math.abs(tonumber(priority)) > PRIORITY_LIMIT then
    return bad('job ' .. n .. ': priority must be an integer within +/-' .. PRIORITY_LIMIT)
  end
  if not is_int(max_attempts) or tonumber(max_attempts) < 1 then
    return bad('job ' .. n .. ': max_attempts must be a positive integer')
  end
  if not string.match(backoff, '^[fe]|%d+|%d+|[01]$') then
    return bad('job ' .. n .. ': malformed backoff')
  end
  local mode, ms = string.match(when, '^([+@])(%d+)$')
  if when ~= '' and not mode then
    return bad('job ' .. n .. ': malformed run time')
  end
  local exists = seen[id] or redis.call('HEXISTS', K_JOBS, id) == 1
  seen[id] = true
  jobs[n] = {
    id = id, envelope = envelope, priority = tonumber(priority), max_attempts = max_attempts,
    backoff = backoff, mode = mode, ms = tonumber(ms), new = not exists,
  }
end

local now = now_ms()
local created = {OK}
local added = 0
for n, job in ipairs(jobs) do
  if job.new then
    added = added + 1
    redis.call('HSET', K_JOBS, job.id, job.envelope)
    redis.call('HSET', K_PROPS, job.id,
      int(now) .. '|' .. job.priority .. '|' .. job.max_attempts .. '|' .. job.backoff)
    local due = now
    if job.mode == '+' then
      due = now + job.ms
    elseif job.mode == '@' then
      due = job.ms
    end
    if due > now then
      schedule(K_SCHEDULED, job.id, due)
    else
      make_available(job.id, job.priority, now)
    end
  end
  created[n + 1] = job.new and 1 or 0
end
if added > 0 then
  redis.call('HINCRBY', K_META, 'enqueued', added)
end
return created
