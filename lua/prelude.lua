-- One file by design: every script is prefixed with it, so it holds the helpers they share.
-- Prepended to every queue script at build time (see queue-core/src/scripts.rs).
--
-- Every script receives the same KEYS, all under one hash tag `{prefix:queue}` so a queue lives in
-- one cluster slot. Job data lives in per-queue hashes keyed by job id, so no script ever builds a
-- key name: everything it touches is in KEYS.
local K_PENDING   = KEYS[1]  -- zset id -> -priority * 2^42 + seq   (ready to run, priority ~= 0)
local K_SCHEDULED = KEYS[2]  -- zset id -> run-at ms                  (delayed by the user)
local K_RETRYING  = KEYS[3]  -- zset id -> run-at ms                  (waiting out a backoff)
local K_ACTIVE    = KEYS[4]  -- zset lease token -> deadline ms (one lease per POP: its batch shares it)
local K_DEAD      = KEYS[5]  -- zset id -> failed-at ms
local K_COMPLETED = KEYS[6]  -- zset id -> completed-at ms
-- hash id -> record: "created|", then "priority|max_attempts|backoff_kind|base_ms|cap_ms|jitter|"
-- unless they are DEFAULT_PROPS, then the envelope (written by the client, never parsed here but
-- for its kind in jobs.lua: see queue-core/src/envelope.rs JobRecord). One hash entry per job.
local K_JOBS      = KEYS[7]
local K_FAILURES  = KEYS[8]  -- hash id -> attempts that ended without success (failed, expired)
local K_TOKENS    = KEYS[9]  -- hash id -> lease token of the current attempt (active jobs only)
local K_ERRORS    = KEYS[10] -- hash id -> last error text
local K_PRIORITIES = KEYS[11] -- hash id -> priority, only for jobs whose priority is not 0
local K_RUNAT     = KEYS[12] -- hash id -> ms at which the job became (or becomes) runnable
local K_META      = KEYS[13] -- hash: paused, seq, token, enqueued, processed, failed, dead
local K_WAKE      = KEYS[14] -- the name of the channel workers listen on (never a key): '1' wakes
                             -- idle ones, 'cancel:<token>:<id>' stops a cancelled job,
                             -- 'schedules' says the schedules changed
local K_REAPER    = KEYS[15] -- string: the reaper's per-interval lock
local K_LEASES    = KEYS[16] -- hash token -> MessagePack array of the lease's job ids,
                             --      '#' .. token -> how many of them are still held
-- Ready jobs at the default priority 0, in arrival order. Most jobs have it, and a list costs no
-- score to compute, format and sort; pop takes priorities above 0, then this list, then below.
local K_PENDING_DEFAULT = KEYS[17] -- list of ids
-- What state-changing calls answered, so that a call delivered twice (a reply lost with its
-- connection, then re-sent by the client) changes nothing the second time and gets the first
-- answer again. Bounded by count and age (REQUEST_LIMIT, REQUEST_WINDOW_MS).
local K_REQUESTS  = KEYS[18] -- list of "<ms>:<request id>", oldest first
local K_REPLIES   = KEYS[19] -- hash request id -> MessagePack of what to answer a re-send
-- The queue's flow control: its limits are the meta fields `rate` ("N/window_ms") and
-- `concurrency` (N); the jobs started in the last window are here (see lib/sliding_window.lua).
local K_RATE      = KEYS[20] -- zset "<ms>:<n>" -> ms a job was leased at
-- What handlers returned (JSON), for completed jobs only: kept and forgotten with the job, so
-- results live exactly as long as the completed retention keeps their jobs.
local K_RESULTS   = KEYS[21] -- hash id -> result
local K_PROGRESS  = KEYS[22] -- hash id -> the last progress its handler reported (JSON)
-- Waiting for a job (wait.lua) marks it in `waiters`; a script that finishes a marked job tells
-- the `finished` stream, which waiting callers block on (XREAD), and unmarks it. The stream is
-- short (NOTICE_LIMIT entries) and expires when idle (NOTICE_TTL_MS): it carries news, not state.
local K_WAITERS   = KEYS[23] -- hash id -> '1'
local K_FINISHED  = KEYS[24] -- stream of {id, state}: marked jobs that completed, died or were cancelled
-- The queue's event stream, written only when the queue keeps one (the meta field `events`
-- holds its length; absent or 0: none), by the same scripts that change the state it records.
local K_EVENTS    = KEYS[25] -- stream of {event, id, attempt[, detail]}
-- Named schedules (see cron_*.lua): name -> definition (MessagePack, written by the client and
-- compared, never parsed, here), '#' .. name -> when it is next due (Unix ms).
local K_SCHEDULES = KEYS[26]
-- Unique keys of jobs (see push.lua): 'k:' .. key -> "mode|until ms|job id", and, for keys held
-- until their job finishes, 'i:' .. job id -> key, so that forget() releases them.
local K_UNIQUE    = KEYS[27]
local K_UNIQUE_EXPIRY = KEYS[28] -- zset key -> until ms, for keys held for a time
-- Groups (fair share, see take_ready): a job may belong to a group (a tenant, a customer).
-- Grouped ready jobs wait in one set ordered by member, "<group>\0<rank><id>" (rank: priority
-- then arrival, GROUP_RANK_LEN digits), so a group's next job is one range lookup away and no
-- key is built per group. Groups with ready jobs take turns in `group:turns`, scored by a
-- virtual clock that a turn advances by jobs taken / weight; a group at one of its limits waits
-- in `group:parked` until it may run again (a time for a rate, +inf until an attempt ends for
-- concurrency). The limits are the meta fields `group_rate` and `group_concurrency`.
local K_GROUP_JOBS = KEYS[29]    -- zset (all scores 0) "<group>\0<rank><id>"
local K_GROUP_OF  = KEYS[30]     -- hash id -> "<group>\0<rank>" (its member, less the id)
local K_GROUP_TURNS = KEYS[31]   -- zset group -> virtual time of its next turn
local K_GROUP_PARKED = KEYS[32]  -- zset group -> ms it may run again (+inf: at its concurrency)
local K_GROUP_STATE = KEYS[33]   -- hash 'a:' .. group -> active jobs, 'w:' .. group -> weight
local K_GROUP_RATE = KEYS[34]    -- zset (all scores 0) "<group>\0<13-digit ms>:<n>": recent starts
local K_GROUP_RATE_EXPIRY = KEYS[35] -- zset group -> ms its last start leaves the window
-- Cancelled jobs, kept for inspection like dead ones and under the same retention (see cancel.lua).
local K_CANCELLED = KEYS[36] -- zset id -> cancelled-at ms

-- Status codes: the first element of every reply. Mirrored by queue-core/src/scripts.rs.
local OK           = 0
local BAD_ARGUMENT = 1
local NOT_FOUND    = 2
local LEASE_LOST   = 3
local SKIPPED      = 4

-- ARGV[1] of every script is a request id: '' for calls that need no memory (reads, and calls
-- whose second delivery changes nothing and answers the same), else the id of one logical call,
-- the same for every delivery of it. The scripts read their own arguments from ARGV[1] on.
local REQUEST = table.remove(ARGV, 1) or ''
-- How many answers a queue remembers, and for how long: a re-send comes within seconds of its
-- first delivery (after a reconnect), or after a Redis restart that stopped every other call.
local REQUEST_LIMIT = 50000
local REQUEST_WINDOW_MS = 300000
-- Marks a remembered answer kept as a count of one repeated value.
local SAME = '='

-- 2^42: the pending score keeps a per-queue sequence below the priority, so equal priorities
-- stay FIFO. |priority| <= 1000 keeps every score an exact integer below 2^53.
local PRIORITY_SPAN = 4398046511104
local PRIORITY_LIMIT = 1000
-- How many finished jobs one call may forget beyond those it adds while trimming a retention
-- set: keeps every call short even when a retention limit is lowered on a large set.
local TRIM_BATCH = 100

-- The most jobs one push takes: one call's work, and so how long it blocks Redis, stays bounded.
-- Mirrored by queue-core (MAX_BULK_JOBS), which refuses a larger bulk before sending it.
local BULK_LIMIT = 10000

-- The longest group name, in bytes. Mirrored by queue-core (MAX_GROUP_LEN).
local GROUP_NAME_LIMIT = 128

-- Values per variadic command: commands take their arguments through Lua's unpack, which
-- refuses more than ~8000; chunks keep every call far below that on any backlog.
local CHUNK = 512

-- The server's time, read once per call: a script runs atomically, so one instant serves all of
-- it, and remember() does not ask Redis again after the script's own reading.
local now_cached = nil
local function now_ms()
  if not now_cached then
    local t = redis.call('TIME')
    now_cached = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_cached
end

-- Lua turns numbers into strings with 14 significant digits: exact below 10^14, where the
-- number can be passed as it is. Larger scores (high priorities) are formatted exactly.
local function int(n)
  if n < 1e14 and n > -1e14 then
    return n
  end
  return string.format('%.0f', n)
end

local function bad(message)
  return {BAD_ARGUMENT, message}
end

-- `command key [options...] v1 v2 ...` in chunks (CHUNK is even, so pairs stay together). A
-- refused call is raised again with the command's name, which Redis's own message leaves out.
local function variadic(command, key, values, options)
  for i = 1, #values, CHUNK do
    local last = math.min(i + CHUNK - 1, #values)
    local reply
    if options then
      local args = {}
      for _, option in ipairs(options) do
        args[#args + 1] = option
      end
      for j = i, last do
        args[#args + 1] = values[j]
      end
      reply = redis.pcall(command, key, unpack(args))
    else
      reply = redis.pcall(command, key, unpack(values, i, last))
    end
    if type(reply) == 'table' and reply.err then
      error({err = reply.err .. ' (' .. command .. ')'})
    end
  end
end

-- Hashes keyed by job id are kept in Redis's hashtable encoding. Redis stores a small hash
-- (up to hash-max-listpack-entries, 128 by default) as a listpack, in which every lookup scans
-- the whole hash: HMGET of 120 ids measured 5x slower than on a hashtable, and `tokens` stays
-- that small under most workloads. One value longer than hash-max-listpack-value (64 bytes)
-- converts a hash for good; the field '' holds it (job ids are never empty).
local PIN_FIELD = ''
local PIN_VALUE = string.rep('-', 80)
local function pin(key)
  redis.call('HSETNX', key, PIN_FIELD, PIN_VALUE)
end

-- The sorted sets keyed by job id, each with the state it holds. A job is in one of them at
-- most: a job in none is leased, or waits in the default-priority list or a group's line.
local WAITING_SETS = {{'pending', K_PENDING}, {'scheduled', K_SCHEDULED}, {'retrying', K_RETRYING}}
local FINISHED_SETS = {{'dead', K_DEAD}, {'completed', K_COMPLETED}, {'cancelled', K_CANCELLED}}
local STATE_SETS = {WAITING_SETS[1], WAITING_SETS[2], WAITING_SETS[3],
  FINISHED_SETS[1], FINISHED_SETS[2], FINISHED_SETS[3]}

-- Which of `sets` holds job `id`: its state, the set and the job's score there; nil if none.
local function state_among(sets, id)
  for _, entry in ipairs(sets) do
    local score = redis.call('ZSCORE', entry[2], id)
    if score then
      return entry[1], entry[2], score
    end
  end
  return nil
end

-- The id that a call on one job names (its only argument), if that job exists; else nil and
-- the reply to give. Checks only: every such script calls it before its first write.
local function job_argument()
  local id = ARGV[1]
  if #ARGV ~= 1 then
    return nil, bad('expected id')
  end
  if id == PIN_FIELD or redis.call('HEXISTS', K_JOBS, id) == 0 then
    return nil, {NOT_FOUND}
  end
  return id
end

-- HSET of `id, value` pairs into a hash keyed by job id.
local function set_by_id(key, pairs)
  if #pairs > 0 then
    pin(key)
    variadic('HSET', key, pairs)
  end
end

-- How many jobs a hash keyed by job id holds.
local function count_by_id(key)
  local fields = redis.call('HLEN', key)
  if fields > 0 and redis.call('HEXISTS', key, PIN_FIELD) == 1 then
    fields = fields - 1
  end
  return fields
end

-- Whether a hash keyed by job id may hold any job: one that holds only its pin (or does not
-- exist) does not, and then looking ids up in it can be skipped (often the case for failures).
local function holds_jobs(key)
  return redis.call('HLEN', key) > 1
end

-- HMGET in chunks from a hash keyed by job id; missing fields come back as false or nil.
local function hmget(key, fields)
  local values = {}
  if not holds_jobs(key) then
    return values
  end
  for i = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #part do
      values[#values + 1] = part[j]
    end
  end
  return values
end

-- The properties a record leaves out when a job has them all (NewJob's defaults: priority 0, 3
-- attempts, exponential backoff from 1 s capped at 1 h with jitter), as push takes them. Records
-- written without them read them back from here, so they never change. Mirrored by queue-core
-- (envelope.rs, DEFAULT_*).
local DEFAULT_PROPS = '0|3|e|1000|3600000|1'

-- The head of a new record: its creation time, then its properties unless they are the defaults
-- (an envelope never starts with a digit or '-', so the two forms tell apart).
local function record_head(created, props)
  if props == DEFAULT_PROPS then
    return created .. '|'
  end
  return created .. '|' .. props .. '|'
end

-- The properties at the head of a record and where its envelope starts, or nil when there is no
-- record or it does not parse (every caller then sends the job to the dead letter with the
-- reason, never raises).
local function parse_props(raw)
  if not raw then
    return nil
  end
  local created, priority, max_attempts, kind, base, cap, jitter, at =
    string.match(raw, '^(%d+)|(%-?%d+)|(%d+)|([fe])|(%d+)|(%d+)|([01])|()')
  if not created then
    created, at = string.match(raw, '^(%d+)|()[^%d%-]')
    if not created then
      return nil
    end
    priority, max_attempts, kind, base, cap, jitter = 0, 3, 'e', 1000, 3600000, '1'
  end
  return {
    created = tonumber(created), priority = tonumber(priority), max_attempts = tonumber(max_attempts),
    backoff = kind, base = tonumber(base), cap = tonumber(cap), jitter = jitter == '1', at = at,
  }
end

-- The properties at the head of a job's record (the slow paths: fail, reap).
local function props_of(id)
  return parse_props(redis.call('HGET', K_JOBS, id))
end

-- Priorities of many jobs, without reading their records (which carry the payloads).
local function priorities_of(ids)
  local priorities = {}
  local raw = hmget(K_PRIORITIES, ids)
  for i = 1, #ids do
    priorities[i] = tonumber(raw[i]) or 0
  end
  return priorities
end

-- A group's name from its `group:of` value, and the bounds of its members in an ordered set.
local function group_name(value)
  return string.match(value, '^(.-)%z')
end
local function group_bounds(group)
  return '[' .. group .. '\0', '(' .. group .. '\1'
end
local GROUP_RANK_LEN = 19
-- The job id in a member of K_GROUP_JOBS.
local function group_member_id(member)
  return string.sub(member, string.find(member, '\0', 1, true) + 1 + GROUP_RANK_LEN)
end

-- The virtual time of the last turn given (meta `turn`), read once per call.
local group_clock = nil
local function group_turn_clock()
  if not group_clock then
    group_clock = tonumber(redis.call('HGET', K_META, 'turn')) or 0
  end
  return group_clock
end

-- Puts `group`, which has ready jobs, in line for a turn, unless it is parked at a limit or
-- already in line: a group that joins is served within about one turn of every other group.
local any_parked = nil
local function admit_group(group)
  if any_parked == nil then
    any_parked = redis.call('ZCARD', K_GROUP_PARKED) > 0
  end
  if not any_parked or not redis.call('ZSCORE', K_GROUP_PARKED, group) then
    redis.call('ZADD', K_GROUP_TURNS, 'NX', group_turn_clock(), group)
  end
end

local woken = false
-- Tells the queue's idle workers there is work, once per script call: each worker listens to
-- all of its queues' channels on one connection, so a worker's connections do not grow with its
-- queues. A worker that pops and leaves work behind passes the word on (see pop.lua).
local function wake()
  if not woken then
    woken = true
    redis.call('PUBLISH', K_WAKE, '1')
  end
end

-- The one way jobs become ready to run: every path (push, promotion of due jobs, retry, reap,
-- replay, release) goes through here, so no path can forget to wake the workers.
-- `priorities[i]` is the priority of `ids[i]`. The time a job became ready (for latency) is
-- recorded as `since`, unless `since` is nil: then the job's run-at time already says it (a
-- new job's is its creation time, a promoted job's is its due time).
local function make_available(ids, priorities, since)
  local n = #ids
  if n == 0 then
    return
  end
  -- One HLEN when the queue has no grouped job.
  local groups = hmget(K_GROUP_OF, ids)
  local default, prioritized, prioritized_priorities = {}, {}, {}
  local grouped, grouped_priorities, grouped_groups = {}, {}, {}
  for i = 1, n do
    if groups[i] then
      grouped[#grouped + 1] = ids[i]
      grouped_priorities[#grouped_priorities + 1] = priorities[i]
      grouped_groups[#grouped_groups + 1] = group_name(groups[i])
    elseif priorities[i] == 0 then
      default[#default + 1] = ids[i]
    else
      prioritized[#prioritized + 1] = ids[i]
      prioritized_priorities[#prioritized_priorities + 1] = priorities[i]
    end
  end
  if #default > 0 then
    variadic('RPUSH', K_PENDING_DEFAULT, default)
  end
  if #prioritized > 0 then
    local first = redis.call('HINCRBY', K_META, 'seq', #prioritized) - #prioritized
    local scored = {}
    for i = 1, #prioritized do
      scored[2 * i - 1] = int(-prioritized_priorities[i] * PRIORITY_SPAN + first + i)
      scored[2 * i] = prioritized[i]
    end
    variadic('ZADD', K_PENDING, scored)
  end
  if #grouped > 0 then
    local first = redis.call('HINCRBY', K_META, 'seq', #grouped) - #grouped
    local members, values, admitted = {}, {}, {}
    for i = 1, #grouped do
      local value = grouped_groups[i] .. '\0'
        .. string.format('%04d%015d', PRIORITY_LIMIT - grouped_priorities[i], first + i)
      members[2 * i - 1] = 0
      members[2 * i] = value .. grouped[i]
      values[2 * i - 1] = grouped[i]
      values[2 * i] = value
    end
    variadic('ZADD', K_GROUP_JOBS, members)
    set_by_id(K_GROUP_OF, values)
    for _, group in ipairs(grouped_groups) do
      if not admitted[group] then
        admitted[group] = true
        admit_group(group)
      end
    end
  end
  if since then
    local at = int(since)
    local runat = {}
    for i = 1, n do
      runat[2 * i - 1] = ids[i]
      runat[2 * i] = at
    end
    set_by_id(K_RUNAT, runat)
  end
  wake()
end

-- Takes up to `count` ready jobs off pending, highest priority first, FIFO within a priority.
-- Pending scores are negative exactly for priorities above 0.
local function take_pending(count)
  local ids = redis.call('ZRANGEBYSCORE', K_PENDING, '-inf', '(0', 'LIMIT', 0, count)
  if #ids > 0 then
    redis.call('ZREMRANGEBYRANK', K_PENDING, 0, #ids - 1)
  end
  if #ids < count then
    local default = redis.call('LPOP', K_PENDING_DEFAULT, count - #ids)
    for _, id in ipairs(default or {}) do
      ids[#ids + 1] = id
    end
  end
  if #ids < count then
    local low = redis.call('ZRANGE', K_PENDING, 0, count - #ids - 1)
    if #low > 0 then
      redis.call('ZREMRANGEBYRANK', K_PENDING, 0, #low - 1)
      for _, id in ipairs(low) do
        ids[#ids + 1] = id
      end
    end
  end
  return ids
end

-- Ready jobs outside groups.
local function ungrouped_count()
  return redis.call('ZCARD', K_PENDING) + redis.call('LLEN', K_PENDING_DEFAULT)
end

-- Ready jobs, in groups or not (including those of groups parked at a limit).
local function pending_count()
  return ungrouped_count() + redis.call('ZCARD', K_GROUP_JOBS)
end

-- Takes up to `count` of the groups' ready jobs, group by group, adding their ids to `ids`
-- (removal for drain and obliterate, not a fair turn). Once none is left, no group stays in line
-- or parked for one (a group emptied in part leaves the line at the next pop that finds it empty).
local function take_grouped_ready(count, ids)
  local members = redis.call('ZRANGE', K_GROUP_JOBS, 0, count - 1)
  if #members > 0 then
    redis.call('ZREMRANGEBYRANK', K_GROUP_JOBS, 0, #members - 1)
    for _, member in ipairs(members) do
      ids[#ids + 1] = group_member_id(member)
    end
  end
  if redis.call('ZCARD', K_GROUP_JOBS) == 0 then
    redis.call('DEL', K_GROUP_TURNS, K_GROUP_PARKED)
  end
end

-- Whether a pop now could take a job: ready jobs outside groups, or a group in line.
local function takeable()
  return redis.call('ZCARD', K_GROUP_TURNS) > 0 or ungrouped_count() > 0
end


-- The job that pop would take next, if any (with groups, the first group's next job).
local function next_in_line()
  local member = redis.call('ZRANGE', K_GROUP_JOBS, 0, 0)[1]
  return redis.call('ZRANGEBYSCORE', K_PENDING, '-inf', '(0', 'LIMIT', 0, 1)[1]
    or redis.call('LINDEX', K_PENDING_DEFAULT, 0)
    or redis.call('ZRANGE', K_PENDING, 0, 0)[1]
    or (member and group_member_id(member))
end

-- When a job became (or becomes) runnable: its run-at time, or else its creation time (from
-- `record`, its jobs entry, when the caller has already read it).
local function run_at(id, record)
  local at = redis.call('HGET', K_RUNAT, id)
  if at then
    return tonumber(at)
  end
  record = record or redis.call('HGET', K_JOBS, id)
  return record and tonumber(string.match(record, '^(%d+)|')) or nil
end

-- Removes a ready job from wherever it waits: its group's line, pending, or the default list
-- (LREM, searched from the end whose job became ready nearer in time to this one: an
-- operator's call, not a hot path). Returns whether it was waiting there.
local function unqueue_ready(id)
  local value = redis.call('HGET', K_GROUP_OF, id)
  if value then
    return redis.call('ZREM', K_GROUP_JOBS, value .. id) == 1
  end
  if redis.call('ZREM', K_PENDING, id) == 1 then
    return true
  end
  local from = 1
  local head, tail = redis.call('LINDEX', K_PENDING_DEFAULT, 0), redis.call('LINDEX', K_PENDING_DEFAULT, -1)
  local at, first, last = run_at(id), head and run_at(head), tail and run_at(tail)
  if at and first and last and at - first > last - at then
    from = -1
  end
  return redis.call('LREM', K_PENDING_DEFAULT, from, id) > 0
end

local function earliest_due()
  local first = nil
  -- A group parked at its rate limit is due when it may run again (+inf: never by time).
  for _, zset in ipairs({K_SCHEDULED, K_RETRYING, K_GROUP_PARKED}) do
    local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
    if head[2] and head[2] ~= 'inf' then
      local due = tonumber(head[2])
      if first == nil or due < first then
        first = due
      end
    end
  end
  return first
end

-- Parks jobs until their due time in `zset` (scheduled or retrying); `dues[i]` is for `ids[i]`.
-- Idle workers sleep until the earliest due time they know of, so a job that becomes the
-- earliest wakes them to re-plan.
local function schedule(zset, ids, dues)
  local n = #ids
  if n == 0 then
    return
  end
  local previous = earliest_due()
  local scored, runat = {}, {}
  local soonest = dues[1]
  for i = 1, n do
    local due = int(dues[i])
    scored[2 * i - 1] = due
    scored[2 * i] = ids[i]
    runat[2 * i - 1] = ids[i]
    runat[2 * i] = due
    if dues[i] < soonest then
      soonest = dues[i]
    end
  end
  variadic('ZADD', zset, scored)
  set_by_id(K_RUNAT, runat)
  if previous == nil or soonest < previous then
    wake()
  end
end

-- Releases the unique keys that `ids` hold until they finish (see K_UNIQUE and push.lua).
local function release_unique(ids)
  if redis.call('HLEN', K_UNIQUE) == 0 then
    return
  end
  local fields = {}
  for i, id in ipairs(ids) do
    fields[i] = 'i:' .. id
  end
  for i = 1, #fields, CHUNK do
    local chunk = {unpack(fields, i, math.min(i + CHUNK - 1, #fields))}
    local keys = redis.call('HMGET', K_UNIQUE, unpack(chunk))
    for j, key in ipairs(keys) do
      if key then
        local field = 'k:' .. key
        local held = redis.call('HGET', K_UNIQUE, field)
        if held and string.match(held, '^%a|%d+|(.*)$') == ids[i + j - 1] then
          redis.call('HDEL', K_UNIQUE, field)
        end
        redis.call('HDEL', K_UNIQUE, chunk[j])
      end
    end
  end
end

-- Removes every trace of finished jobs (their lease token went when their last attempt ended).
local function forget(ids)
  if #ids == 0 then
    return
  end
  release_unique(ids)
  for _, hash in ipairs({K_JOBS, K_FAILURES, K_ERRORS, K_PRIORITIES, K_RUNAT, K_RESULTS, K_PROGRESS, K_WAITERS,
      K_GROUP_OF}) do
    if holds_jobs(hash) then
      variadic('HDEL', hash, ids)
    end
  end
end

-- Bounds a retention set (completed or dead) by count and by age, forgetting what falls out:
-- at most `budget` jobs per call, so that no call blocks Redis for long. A call that added n
-- jobs passes a budget above n, so a set within its count before the call is within it after.
-- Returns whether jobs beyond the bounds are left for a later call.
local function trim(zset, keep_count, keep_age_ms, now, budget)
  local excess = redis.call('ZCARD', zset) - keep_count
  local victims = {}
  if excess > 0 then
    victims = redis.call('ZRANGE', zset, 0, math.min(excess, budget) - 1)
  end
  local more = excess > budget
  if keep_age_ms > 0 and #victims < budget then
    local cutoff = '(' .. int(now - keep_age_ms)
    local old = redis.call('ZRANGEBYSCORE', zset, '-inf', cutoff, 'LIMIT', #victims, budget - #victims + 1)
    if #old > budget - #victims then
      more = true
      old[#old] = nil
    end
    for _, id in ipairs(old) do
      victims[#victims + 1] = id
    end
  elseif keep_age_ms > 0 and not more then
    more = #redis.call('ZRANGEBYSCORE', zset, '-inf', '(' .. int(now - keep_age_ms), 'LIMIT', budget, 1) > 0
  end
  if #victims > 0 then
    -- Both queries take from the low end, so the victims are exactly the lowest ranks.
    redis.call('ZREMRANGEBYRANK', zset, 0, #victims - 1)
    forget(victims)
  end
  return more
end

-- Counts ended attempts out of their groups' active jobs; a group parked at its concurrency
-- limit that now has room gets back in line, and the workers are told.
local function end_group_attempts(ids)
  local values = hmget(K_GROUP_OF, ids)
  if #values == 0 then
    return
  end
  local ended, order = {}, {}
  for i = 1, #ids do
    if values[i] then
      local group = group_name(values[i])
      if not ended[group] then
        ended[group] = 0
        order[#order + 1] = group
      end
      ended[group] = ended[group] + 1
    end
  end
  local concurrency = nil
  local parked = redis.call('ZCARD', K_GROUP_PARKED) > 0
  for _, group in ipairs(order) do
    local active = redis.call('HINCRBY', K_GROUP_STATE, 'a:' .. group, -ended[group])
    if active <= 0 then
      redis.call('HDEL', K_GROUP_STATE, 'a:' .. group)
    end
    if parked and redis.call('ZSCORE', K_GROUP_PARKED, group) == 'inf' then
      concurrency = concurrency or tonumber(redis.call('HGET', K_META, 'group_concurrency')) or math.huge
      if active < concurrency then
        redis.call('ZREM', K_GROUP_PARKED, group)
        local first, last = group_bounds(group)
        if redis.call('ZLEXCOUNT', K_GROUP_JOBS, first, last) > 0 then
          admit_group(group)
          wake()
        end
      end
    end
  end
end

-- Ends the current attempt of jobs (`tokens[i]` is the lease of `ids[i]`): their tokens are
-- void, and a lease none of whose jobs is held any more leaves `active`.
local function end_attempts(ids, tokens)
  if #ids == 0 then
    return
  end
  variadic('HDEL', K_TOKENS, ids)
  local ended, order = {}, {}
  for i = 1, #ids do
    local token = tokens[i]
    if not ended[token] then
      ended[token] = 0
      order[#order + 1] = token
    end
    ended[token] = ended[token] + 1
  end
  for _, token in ipairs(order) do
    if redis.call('HINCRBY', K_LEASES, '#' .. token, -ended[token]) <= 0 then
      redis.call('ZREM', K_ACTIVE, token)
      redis.call('HDEL', K_LEASES, token, '#' .. token)
    end
  end
  -- Under a concurrency limit, pop leaves jobs pending while the queue is full and workers wait
  -- to be woken: attempts that end in a full queue make room. (Only then: a wake-up reaches
  -- every idle worker of the queue.)
  local concurrency = tonumber(redis.call('HGET', K_META, 'concurrency'))
  if concurrency and count_by_id(K_TOKENS) + #ids >= concurrency and pending_count() > 0 then
    wake()
  end
  end_group_attempts(ids)
end

-- Records finished jobs in a retention set (completed or dead) at `now`, counts them in the
-- meta field `counter`, and keeps the set within its retention.
local function retain(zset, counter, ids, now, keep_count, keep_age_ms)
  if #ids == 0 then
    return
  end
  -- The score as a string once, not a number formatted again for every job.
  local at = tostring(int(now))
  local scored = {}
  for i, id in ipairs(ids) do
    scored[2 * i - 1] = at
    scored[2 * i] = id
  end
  variadic('ZADD', zset, scored)
  redis.call('HINCRBY', K_META, counter, #ids)
  trim(zset, keep_count, keep_age_ms, now, #ids + TRIM_BATCH)
end

-- Moves jobs to the dead letter, keeping it within its retention.
local function bury(ids, now, keep_count, keep_age_ms)
  retain(K_DEAD, 'dead', ids, now, keep_count, keep_age_ms)
end

-- Reads leases from ARGV[first..]: runs of `token, n, then n ids` (the jobs named under one
-- lease), and splits them into the jobs whose token is the one recorded for their current
-- attempt (held, with their tokens) and a status per named job (OK or LEASE_LOST), in ARGV
-- order. Returns nil when the runs are malformed.
local function check_leases(first)
  local ids, tokens = {}, {}
  local at = first
  while at <= #ARGV do
    local token, n = ARGV[at], tonumber(ARGV[at + 1])
    if not n or n < 1 or n % 1 ~= 0 or at + 1 + n > #ARGV then
      return nil
    end
    for j = at + 2, at + 1 + n do
      ids[#ids + 1] = ARGV[j]
      tokens[#tokens + 1] = token
    end
    at = at + 2 + n
  end
  local current = hmget(K_TOKENS, ids)
  local held, held_tokens, statuses, seen = {}, {}, {}, {}
  for i = 1, #ids do
    -- A job named twice in one call is settled once; an empty id names no job (the field ''
    -- of a hash keyed by id holds its pin).
    if ids[i] ~= PIN_FIELD and current[i] == tokens[i] and not seen[ids[i]] then
      seen[ids[i]] = true
      held[#held + 1] = ids[i]
      held_tokens[#held_tokens + 1] = tokens[i]
      statuses[i] = OK
    else
      statuses[i] = LEASE_LOST
    end
  end
  return held, held_tokens, statuses
end

-- The reply of a settle script: {OK, <extra values>, status per job}.
local function status_reply(statuses, ...)
  local reply = {OK, ...}
  for i = 1, #statuses do
    reply[#reply + 1] = statuses[i]
  end
  return reply
end

-- What this call answered the first time it was delivered, if it was (see K_REPLIES).
local function remembered()
  if REQUEST == '' then
    return nil
  end
  local memo = redis.call('HGET', K_REPLIES, REQUEST)
  if not memo then
    return nil
  end
  -- Written again, unchanged: a re-send comes on a new connection, and a Redis WAIT sent behind
  -- it on that connection counts only writes made there; this one is replicated after the first
  -- delivery's writes, so a replica that has it has them (see Durability::Replicated).
  redis.call('HSET', K_REPLIES, REQUEST, memo)
  memo = cmsgpack.unpack(memo)
  if memo[1] == SAME then
    -- {SAME, status, value, n}: the status, then n times the same value (see remember).
    local reply = {memo[2]}
    for i = 2, memo[4] + 1 do
      reply[i] = memo[3]
    end
    return reply
  end
  return memo
end

-- Remembers `memo` (by default the reply) as this call's answer for a re-send of it, forgets
-- the answers past the count or age bound, and returns `reply`. Called last, after every write.
local function remember(reply, memo)
  if REQUEST == '' then
    return reply
  end
  local now = now_ms()
  if not memo and #reply > 4 then
    -- Most answers are a status then one value per job, all alike (every job created, every
    -- lease held): kept as a count, an answer costs the same for one job or ten thousand.
    local same = true
    for i = 3, #reply do
      if reply[i] ~= reply[2] then
        same = false
        break
      end
    end
    if same then
      memo = {SAME, reply[1], reply[2], #reply - 1}
    end
  end
  redis.call('HSET', K_REPLIES, REQUEST, cmsgpack.pack(memo or reply))
  local count = redis.call('RPUSH', K_REQUESTS, int(now) .. ':' .. REQUEST)
  -- One answer added, and up to a few more than one dropped: the count bound holds after every
  -- call, and the age bound catches up with a burst of old answers within a few calls.
  local heads = redis.call('LRANGE', K_REQUESTS, 0, 3)
  local dropped = {}
  for i, head in ipairs(heads) do
    local at, id = string.match(head, '^(%d+):(.*)$')
    if count - #dropped > REQUEST_LIMIT or (at and tonumber(at) < now - REQUEST_WINDOW_MS) or not at then
      dropped[#dropped + 1] = id or head
    else
      break
    end
  end
  if #dropped > 0 then
    redis.call('LPOP', K_REQUESTS, #dropped)
    redis.call('HDEL', K_REPLIES, unpack(dropped))
  end
  return reply
end

local NOTICE_LIMIT = 1000
local NOTICE_TTL_MS = 600000

-- Adds one entry to a notice stream (finished): capped, and gone when idle.
local function notice(stream, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', NOTICE_LIMIT, '*', ...)
  redis.call('PEXPIRE', stream, NOTICE_TTL_MS)
end

-- Tells the callers waiting for any of `ids` that it finished as `state` (completed, dead,
-- cancelled). Costs one HLEN when nobody waits.
local function tell_waiters(ids, state)
  if #ids == 0 or not holds_jobs(K_WAITERS) then
    return
  end
  local marked = hmget(K_WAITERS, ids)
  local told = {}
  for i, id in ipairs(ids) do
    if marked[i] then
      notice(K_FINISHED, 'id', id, 'state', state)
      told[#told + 1] = id
    end
  end
  if #told > 0 then
    variadic('HDEL', K_WAITERS, told)
  end
end

-- The length the queue's event stream is capped at, 0 when it keeps none (read once per call).
local events_limit = nil
local function events_on()
  if events_limit == nil then
    events_limit = tonumber(redis.call('HGET', K_META, 'events') or '0') or 0
  end
  return events_limit > 0
end

-- Records `event` for each of `ids` in the event stream, if the queue keeps one. `attempts[i]`
-- is the attempt of ids[i] (a number: the same for all); `detail`, if given, goes with every
-- entry (an error, a run-at time, a progress value).
local function emit(event, ids, attempts, detail)
  if #ids == 0 or not events_on() then
    return
  end
  for i, id in ipairs(ids) do
    local attempt = type(attempts) == 'table' and attempts[i] or attempts
    if detail then
      redis.call('XADD', K_EVENTS, 'MAXLEN', '~', events_limit, '*', 'event', event, 'id', id, 'attempt', attempt,
        'detail', detail)
    else
      redis.call('XADD', K_EVENTS, 'MAXLEN', '~', events_limit, '*', 'event', event, 'id', id, 'attempt', attempt)
    end
  end
end

-- Attempts started so far by each of `ids` that is running or just ended: the failed ones and
-- the current one.
local function attempts_of(ids)
  local failures = hmget(K_FAILURES, ids)
  local attempts = {}
  for i = 1, #ids do
    attempts[i] = (tonumber(failures[i]) or 0) + 1
  end
  return attempts
end
