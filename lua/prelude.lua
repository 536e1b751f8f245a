-- Prepended to every queue script at build time (see queue-core/src/scripts.rs).
--
-- Every script receives the same KEYS, all under one hash tag `{prefix:queue}` so a queue lives in
-- one cluster slot. Job data lives in per-queue hashes keyed by job id, so no script ever builds a
-- key name: everything it touches is in KEYS.
local K_PENDING   = KEYS[1]  -- zset id -> -priority * 2^42 + seq   (ready to run)
local K_SCHEDULED = KEYS[2]  -- zset id -> run-at ms                  (delayed by the user)
local K_RETRYING  = KEYS[3]  -- zset id -> run-at ms                  (waiting out a backoff)
local K_ACTIVE    = KEYS[4]  -- zset id -> lease deadline ms
local K_DEAD      = KEYS[5]  -- zset id -> failed-at ms
local K_COMPLETED = KEYS[6]  -- zset id -> completed-at ms
local K_JOBS      = KEYS[7]  -- hash id -> envelope (MessagePack, written by the client, never parsed here)
local K_ATTEMPTS  = KEYS[8]  -- hash id -> attempts started
local K_TOKENS    = KEYS[9]  -- hash id -> lease token of the current attempt (active jobs only)
local K_ERRORS    = KEYS[10] -- hash id -> last error text
local K_PROPS     = KEYS[11] -- hash id -> "created|priority|max_attempts|backoff_kind|base_ms|cap_ms|jitter"
local K_RUNAT     = KEYS[12] -- hash id -> ms at which the job became (or becomes) runnable
local K_META      = KEYS[13] -- hash: paused, seq, token, enqueued, processed, failed, dead
local K_WAKE      = KEYS[14] -- list: a marker that idle workers block on
local K_REAPER    = KEYS[15] -- string: the reaper's per-interval lock

-- Status codes: the first element of every reply. Mirrored by queue-core/src/scripts.rs.
local OK           = 0
local BAD_ARGUMENT = 1
local NOT_FOUND    = 2
local LEASE_LOST   = 3
local SKIPPED      = 4

-- 2^42: the pending score keeps a per-queue sequence below the priority, so equal priorities
-- stay FIFO. |priority| <= 1000 keeps every score an exact integer below 2^53.
local PRIORITY_SPAN = 4398046511104
local PRIORITY_LIMIT = 1000
-- How many finished jobs one call may forget while trimming a retention set: keeps every call
-- O(log n) amortised even when a retention limit is lowered on a large set.
local TRIM_BATCH = 100

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lua formats numbers with 14 significant digits; scores and times are formatted exactly.
local function int(n)
  return string.format('%.0f', n)
end

local function is_int(s)
  return type(s) == 'string' and string.match(s, '^%-?%d+$') ~= nil and #s <= 16
end

local function bad(message)
  return {BAD_ARGUMENT, message}
end

local function parse_props(id)
  local raw = redis.call('HGET', K_PROPS, id)
  if not raw then
    return nil
  end
  local created, priority, max_attempts, kind, base, cap, jitter =
    string.match(raw, '^(%d+)|(%-?%d+)|(%d+)|(%a)|(%d+)|(%d+)|(%d)$')
  return {
    created = tonumber(created), priority = tonumber(priority), max_attempts = tonumber(max_attempts),
    backoff = kind, base = tonumber(base), cap = tonumber(cap), jitter = jitter == '1',
  }
end

local woken = false
-- Signals idle workers once per script call: one marker means "there is work"; a worker that
-- pops and leaves work behind passes the marker on (see pop.lua).
local function wake()
  if not woken then
    woken = true
    if redis.call('LLEN', K_WAKE) == 0 then
      redis.call('RPUSH', K_WAKE, '1')
    end
  end
end

-- The one way a job becomes ready to run: every path (push, promotion of due jobs, retry,
-- reap, replay, release) goes through here, so no path can forget to wake the workers.
local function make_available(id, priority, now)
  local seq = redis.call('HINCRBY', K_META, 'seq', 1)
  redis.call('ZADD', K_PENDING, int(-priority * PRIORITY_SPAN + seq), id)
  redis.call('HSET', K_RUNAT, id, int(now))
  wake()
end

local function earliest_due()
  local first = nil
  for _, zset in ipairs({K_SCHEDULED, K_RETRYING}) do
    local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
    if head[2] then
      local due = tonumber(head[2])
      if first == nil or due < first then
        first = due
      end
    end
  end
  return first
end

-- Parks a job until `due` in `zset` (scheduled or retrying). Idle workers sleep until the
-- earliest due time they know of, so a job that becomes the earliest wakes them to re-plan.
local function schedule(zset, id, due)
  local previous = earliest_due()
  redis.call('ZADD', zset, int(due), id)
  redis.call('HSET', K_RUNAT, id, int(due))
  if previous == nil or due < previous then
    wake()
  end
end

-- Removes every trace of a finished job.
local function forget(id)
  redis.call('HDEL', K_JOBS, id)
  redis.call('HDEL', K_ATTEMPTS, id)
  redis.call('HDEL', K_TOKENS, id)
  redis.call('HDEL', K_ERRORS, id)
  redis.call('HDEL', K_PROPS, id)
  redis.call('HDEL', K_RUNAT, id)
end

-- Bounds a retention set (completed or dead) by count and by age, forgetting what falls out.
local function trim(zset, keep_count, keep_age_ms, now)
  local excess = redis.call('ZCARD', zset) - keep_count
  local victims = {}
  if excess > 0 then
    victims = redis.call('ZRANGE', zset, 0, math.min(excess, TRIM_BATCH) - 1)
  end
  if keep_age_ms > 0 and #victims < TRIM_BATCH then
    local cutoff = '(' .. int(now - keep_age_ms)
    local old = redis.call('ZRANGEBYSCORE', zset, '-inf', cutoff, 'LIMIT', #victims, TRIM_BATCH - #victims)
    for _, id in ipairs(old) do
      victims[#victims + 1] = id
    end
  end
  for _, id in ipairs(victims) do
    redis.call('ZREM', zset, id)
    forget(id)
  end
end

-- Ends a job's current attempt: it leaves `active` and its lease token is void.
local function end_attempt(id)
  redis.call('ZREM', K_ACTIVE, id)
  redis.call('HDEL', K_TOKENS, id)
end

local function bury(id, now, keep_count, keep_age_ms)
  redis.call('ZADD', K_DEAD, int(now), id)
  redis.call('HINCRBY', K_META, 'dead', 1)
  trim(K_DEAD, keep_count, keep_age_ms, now)
end

-- A lease token is valid when it is the one recorded for the job's current attempt.
local function holds_lease(id, token)
  return redis.call('HGET', K_TOKENS, id) == token
end
