-- POP: lease up to `count` jobs, highest priority first, FIFO within a priority. Due delayed
-- and retrying jobs are promoted first, at most `promote_limit` per set per call. The queue's
-- limits (meta `rate` and `concurrency`, set by limits.lua) bound the batch for all workers at
-- once: jobs held back stay pending, and the reply's next_due says when the rate limit lets the
-- next one start (a concurrency limit wakes the workers when an attempt ends instead). Jobs in
-- groups take fair turns with each other and with the rest (see lib/fair_share.lua).
-- ARGV: count, lease_ms, promote_limit
-- Reply: {OK, now_ms, next_due_ms (-1 if none), paused (0/1), token, then per job: id,
-- record (properties then envelope, see K_JOBS), attempt, runnable_at_ms ('' when the job has
-- been runnable since it was created: the record's first property)}. The jobs share one lease (token),
-- renewed and expired together; each job still settles on its own. A paused queue leases
-- nothing. A re-sent call that leased jobs gets the same lease again: the jobs it still holds.
local count, lease_ms, promote_limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not count or count < 1 or not lease_ms or lease_ms < 1 or not promote_limit or promote_limit < 0 then
  return bad('expected count >= 1, lease_ms >= 1, promote_limit >= 0')
end

-- The reply for the jobs that lease `token` holds, in the order it took them.
local function leased(reply, token, ids)
  reply[5] = token
  local failures = hmget(K_FAILURES, ids)
  local records = hmget(K_JOBS, ids)
  -- For the worker's pickup latency; an empty hash (no job was ever delayed) costs one HLEN.
  local runnable = hmget(K_RUNAT, ids)
  local at = 5
  for i = 1, #ids do
    reply[at + 1] = ids[i]
    reply[at + 2] = records[i] or ''
    reply[at + 3] = (tonumber(failures[i]) or 0) + 1
    reply[at + 4] = runnable[i] or ''
    at = at + 4
  end
  return reply
end

local memo = remembered()
if memo then
  -- memo: {now_ms, next_due_ms, token}. Jobs the lease no longer holds (it expired and was
  -- reaped before the re-send arrived) are not answered again; the ones it holds get a full
  -- lease from now, as the caller counts on (a re-send can come long after the first delivery).
  local token = memo[3]
  local packed = redis.call('HGET', K_LEASES, token)
  local ok, ids = pcall(cmsgpack.unpack, packed or '')
  local held = {}
  if ok and type(ids) == 'table' then
    local current = hmget(K_TOKENS, ids)
    for i, id in ipairs(ids) do
      if current[i] == token then
        held[#held + 1] = id
      end
    end
  end
  local now = now_ms()
  if #held > 0 then
    redis.call('ZADD', K_ACTIVE, 'XX', 'GT', int(now + lease_ms), token)
  end
  return leased({OK, int(now), memo[2], 0, ''}, token, held)
end

local now = now_ms()
local meta = redis.call('HMGET', K_META, 'paused', 'rate', 'concurrency', 'group_rate', 'group_concurrency')
if meta[1] == '1' then
  return {OK, int(now), int(earliest_due() or -1), 1, ''}
end

for _, zset in ipairs({K_SCHEDULED, K_RETRYING}) do
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', int(now), 'LIMIT', 0, promote_limit)
  if #due > 0 then
    variadic('ZREM', zset, due)
    make_available(due, priorities_of(due), nil)
  end
end
unpark_due_groups(now, promote_limit)

local reply = {OK, int(now), 0, 0, ''}
-- Limits: how many of the pending jobs may start now. `held_back` says a limit kept some pending
-- (then no worker is woken to take them), `free_at` when the rate limit lets the next one start.
local held_back, free_at = false, nil
local take = count
if meta[2] or meta[3] then
  take = math.min(count, pending_count())
  local wanted = take
  if meta[3] then
    take = math.max(0, math.min(take, tonumber(meta[3]) - count_by_id(K_TOKENS)))
  end
  if meta[2] and take > 0 then
    local limit, window_ms = string.match(meta[2], '^(%d+)/(%d+)$')
    local took, _, wait = sliding_window_take(K_RATE, tonumber(limit), tonumber(window_ms), tonumber(limit),
      take, true, now, 1)
    if took < take and wait > 0 then
      free_at = now + wait
    end
    take = took
  end
  held_back = take < wanted
end
local ids = {}
if take > 0 then
  ids = take_ready(take, now, meta[4], tonumber(meta[5]))
end
local token = nil
if #ids > 0 then
  -- One lease for the batch: per job only its token is written, and the same string each time.
  -- Tokens follow the clock (a thousand per ms) as well as the last token: if Redis loses its
  -- last writes (a crash under appendfsync everysec, a failover), tokens still never repeat.
  local last = tonumber(redis.call('HGET', K_META, 'token')) or 0
  token = tostring(int(math.max(last + 1, now * 1000)))
  redis.call('HSET', K_META, 'token', token)
  redis.call('ZADD', K_ACTIVE, int(now + lease_ms), token)
  redis.call('HSET', K_LEASES, token, cmsgpack.pack(ids), '#' .. token, #ids)
  local tokens = {}
  for i = 1, #ids do
    tokens[2 * i - 1] = ids[i]
    tokens[2 * i] = token
  end
  set_by_id(K_TOKENS, tokens)
  leased(reply, token, ids)
  if events_on() then
    emit('started', ids, attempts_of(ids))
  end
end

-- Work left behind goes to the next idle worker, unless a limit holds it back.
if not held_back and takeable() then
  wake()
end
local due = earliest_due()
if free_at and (not due or free_at < due) then
  due = free_at
end
reply[3] = int(due or -1)
if token then
  return remember(reply, {reply[2], reply[3], token})
end
return reply
