-- JOBS: one page of the jobs in a state (read-only), in the order they are served or happened:
-- pending in pop order (priorities above 0, then the default-priority list, then below 0),
-- scheduled and retrying soonest first, active by lease deadline, dead, completed and cancelled
-- most recent first.
-- ARGV: state, offset, limit (1..PAGE_LIMIT)
-- Reply: {OK, total, then per job: id, kind ('' when the record does not decode), priority,
--         max_attempts, created_ms, attempts, last_error ('' if none), run_at_ms ('' if none),
--         at_ms}
-- at_ms is the state's own time: when the job became ready (pending), is due (scheduled,
-- retrying), its lease deadline (active), or when it finished (dead, completed, cancelled).
-- The cost is O(log n + limit), plus O(offset) for pending jobs in the default-priority list
-- and for active jobs (their leases are walked to the page).
local PAGE_LIMIT = 1000
local state, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if #ARGV ~= 3 or not offset or offset < 0 or offset % 1 ~= 0 or not limit or limit < 1
    or limit > PAGE_LIMIT or limit % 1 ~= 0 then
  return bad('expected state, offset >= 0, limit from 1 to ' .. PAGE_LIMIT)
end

local ids, times = {}, {}
local function add(id, at)
  ids[#ids + 1] = id
  times[#times + 1] = at or ''
end
-- ZRANGE-style replies with scores: id, score, id, score...
local function add_scored(page)
  for i = 1, #page, 2 do
    add(page[i], page[i + 1])
  end
end

local total
local last = offset + limit - 1
if state == 'pending' then
  -- Pop order is three segments: pending scores below 0 (priorities above 0) by rank, the list,
  -- then the rest of pending by rank. Positions in the page map onto each segment's own range.
  local high = redis.call('ZCOUNT', K_PENDING, '-inf', '(0')
  local listed = redis.call('LLEN', K_PENDING_DEFAULT)
  local ungrouped = redis.call('ZCARD', K_PENDING) + listed
  total = ungrouped + redis.call('ZCARD', K_GROUP_JOBS)
  if offset < high then
    for _, id in ipairs(redis.call('ZRANGE', K_PENDING, offset, math.min(last, high - 1))) do
      add(id)
    end
  end
  local from, to = math.max(offset, high), math.min(last, high + listed - 1)
  if from <= to then
    for _, id in ipairs(redis.call('LRANGE', K_PENDING_DEFAULT, from - high, to - high)) do
      add(id)
    end
  end
  from, to = math.max(offset, high + listed), math.min(last, ungrouped - 1)
  if from <= to then
    for _, id in ipairs(redis.call('ZRANGE', K_PENDING, from - listed, to - listed)) do
      add(id)
    end
  end
  -- Then the groups' ready jobs, group by group (pop serves them in turns).
  from, to = math.max(offset, ungrouped), math.min(last, total - 1)
  if from <= to then
    for _, member in ipairs(redis.call('ZRANGE', K_GROUP_JOBS, from - ungrouped, to - ungrouped)) do
      add(group_member_id(member))
    end
  end
  -- A pending job's time is when it became ready.
  local runat = hmget(K_RUNAT, ids)
  for i = 1, #ids do
    times[i] = runat[i] or ''
  end
elseif state == 'scheduled' or state == 'retrying' then
  local zset = state == 'scheduled' and K_SCHEDULED or K_RETRYING
  total = redis.call('ZCARD', zset)
  add_scored(redis.call('ZRANGE', zset, offset, last, 'WITHSCORES'))
elseif state == 'dead' or state == 'completed' or state == 'cancelled' then
  local zset = ({dead = K_DEAD, completed = K_COMPLETED, cancelled = K_CANCELLED})[state]
  total = redis.call('ZCARD', zset)
  add_scored(redis.call('ZREVRANGE', zset, offset, last, 'WITHSCORES'))
elseif state == 'active' then
  -- Active jobs are the ones their lease still holds: leases in deadline order, each lease's
  -- jobs in the order it took them. The held counts skip whole leases before the page.
  total = count_by_id(K_TOKENS)
  local skip = offset
  local rank = 0
  while #ids < limit do
    local leases = redis.call('ZRANGE', K_ACTIVE, rank, rank + CHUNK - 1, 'WITHSCORES')
    if #leases == 0 then
      break
    end
    rank = rank + #leases / 2
    for i = 1, #leases, 2 do
      local token, deadline = leases[i], leases[i + 1]
      local held = tonumber(redis.call('HGET', K_LEASES, '#' .. token)) or 0
      if skip >= held then
        skip = skip - held
      else
        local ok, members = pcall(cmsgpack.unpack, redis.call('HGET', K_LEASES, token) or '')
        if ok and type(members) == 'table' then
          local current = hmget(K_TOKENS, members)
          for j, id in ipairs(members) do
            if current[j] == token and #ids < limit then
              if skip > 0 then
                skip = skip - 1
              else
                add(id, deadline)
              end
            end
          end
        end
        skip = 0
      end
      if #ids >= limit then
        break
      end
    end
  end
else
  return bad('unknown state ' .. state .. ': expected pending, scheduled, retrying, active, dead, completed or cancelled')
end

-- MessagePack strings: fixstr, str8, str16. Returns the string at `i` of `data` and where the
-- next value starts, or nil for anything else.
local function msgpack_string(data, i)
  local b = string.byte(data, i) or -1
  local len, from
  if b >= 0xa0 and b <= 0xbf then
    len, from = b - 0xa0, i + 1
  elseif b == 0xd9 then
    len, from = string.byte(data, i + 1) or -1, i + 2
  elseif b == 0xda then
    local high, low = string.byte(data, i + 1, i + 2)
    len, from = (high or -1) * 256 + (low or 0), i + 3
  else
    return nil
  end
  if len < 0 or from + len - 1 > #data then
    return nil
  end
  return string.sub(data, from, from + len - 1), from + len
end

-- The `kind` of the envelope in `record` at `at`: in the compact form, 0x01 then an array whose
-- first item it is; in the named form of earlier versions, a MessagePack map whose first entries
-- are strings (id, queue, kind), before the payload. Only strings are read (Redis's cmsgpack does
-- not take the bin type payloads are stored as); nil when not found.
local function kind_of(record, at)
  local b = string.byte(record, at) or -1
  if b == 0x01 then
    local items = string.byte(record, at + 1) or -1
    if items < 0x91 or items > 0x93 then
      return nil
    end
    return (msgpack_string(record, at + 2))
  end
  local entries, i
  if b >= 0x80 and b <= 0x8f then
    entries, i = b - 0x80, at + 1
  elseif b == 0xde then
    local high, low = string.byte(record, at + 1, at + 2)
    entries, i = (high or 0) * 256 + (low or 0), at + 3
  else
    return nil
  end
  for _ = 1, entries do
    local key, value
    key, i = msgpack_string(record, i)
    if not key then
      return nil
    end
    value, i = msgpack_string(record, i)
    if not value then
      return nil
    end
    if key == 'kind' then
      return value
    end
  end
  return nil
end

local records = hmget(K_JOBS, ids)
local failures = hmget(K_FAILURES, ids)
local errors = hmget(K_ERRORS, ids)
local runats = state == 'pending' and {} or hmget(K_RUNAT, ids)
-- Attempts started: the ones that ended without success, plus the one running or succeeded.
local current = (state == 'active' or state == 'completed') and 1 or 0
local reply = {OK, total}
for i, id in ipairs(ids) do
  -- The properties at the head of the record (see K_JOBS), and where the envelope starts.
  local created, priority, max_attempts, at
  local props = parse_props(records[i])
  if props then
    created, priority, max_attempts, at = tostring(props.created), props.priority, props.max_attempts, props.at
  end
  local kind = at and kind_of(records[i], at) or ''
  local runat = runats[i] or created or ''
  if state == 'pending' then
    runat = times[i] ~= '' and times[i] or runat
    times[i] = runat
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = kind
  reply[#reply + 1] = tonumber(priority) or 0
  reply[#reply + 1] = tonumber(max_attempts) or 0
  reply[#reply + 1] = created or ''
  reply[#reply + 1] = (tonumber(failures[i]) or 0) + current
  reply[#reply + 1] = errors[i] or ''
  reply[#reply + 1] = runat
  reply[#reply + 1] = times[i]
end
return reply
