-- OBLITERATE: remove the queue and everything in it, at most about `limit` entries per call (a
-- leased batch is taken whole): jobs in every state first, then the queue's own keys. The
-- client repeats the call until it answers done. Running jobs lose their lease: their
-- worker's next renewal or settle call answers LEASE_LOST and writes nothing, so no key comes
-- back. The answer is not remembered (that would write a key): a re-sent call removes what is
-- left, which is what the first delivery did. Callers waiting for a removed job are told it
-- was deleted; the call that told them leaves the finished stream for the next call to remove,
-- so that their blocked reads are served the notice first.
-- ARGV: limit
-- Reply: {OK, jobs removed, done (0/1)}
local limit = tonumber(ARGV[1])
if #ARGV ~= 1 or not limit or limit < 1 or limit % 1 ~= 0 then
  return bad('expected limit >= 1')
end
local ids = {}
local function take(list)
  for _, id in ipairs(list or {}) do
    ids[#ids + 1] = id
  end
end

-- Leased jobs: each lease whole, with its tokens.
local leased = {}
while #ids < limit do
  local token = redis.call('ZRANGE', K_ACTIVE, 0, 0)[1]
  if not token then
    break
  end
  local ok, members = pcall(cmsgpack.unpack, redis.call('HGET', K_LEASES, token) or '')
  if ok and type(members) == 'table' then
    -- Only the jobs it still holds: the others settled and sit in their state's set.
    local current = hmget(K_TOKENS, members)
    for i, id in ipairs(members) do
      if current[i] == token then
        ids[#ids + 1] = id
        leased[#leased + 1] = id
      end
    end
  end
  redis.call('ZREM', K_ACTIVE, token)
  redis.call('HDEL', K_LEASES, token, '#' .. token)
end
if #leased > 0 then
  variadic('HDEL', K_TOKENS, leased)
end
for _, entry in ipairs(STATE_SETS) do
  local zset = entry[2]
  if #ids < limit then
    local taken = redis.call('ZRANGE', zset, 0, limit - #ids - 1)
    if #taken > 0 then
      redis.call('ZREMRANGEBYRANK', zset, 0, #taken - 1)
      take(taken)
    end
  end
end
if #ids < limit then
  take(redis.call('LPOP', K_PENDING_DEFAULT, limit - #ids))
end
if #ids < limit then
  take_grouped_ready(limit - #ids, ids)
end
local told = holds_jobs(K_WAITERS)
tell_waiters(ids, 'deleted')
forget(ids)
local removed = #ids
if removed >= limit or (told and removed > 0) then
  return {OK, removed, 0}
end

-- No job is left in any state: what remains is the queue's own keys. The hashes keyed by job id
-- hold only their pins now (or strays no state named), the request memory up to REQUEST_LIMIT
-- answers: large ones shrink by `limit` entries per call.
local budget = limit - removed
for _, hash in ipairs({K_JOBS, K_FAILURES, K_TOKENS, K_ERRORS, K_PRIORITIES, K_RUNAT, K_LEASES, K_UNIQUE,
    K_SCHEDULES, K_GROUP_OF, K_GROUP_STATE, K_RESULTS, K_PROGRESS, K_WAITERS}) do
  local size = redis.call('HLEN', hash)
  if size > budget then
    local scan = redis.call('HSCAN', hash, 0, 'COUNT', budget)
    local fields = {}
    for i = 1, #scan[2], 2 do
      fields[#fields + 1] = scan[2][i]
    end
    if #fields == 0 then
      -- The scan found nothing near the start of a sparse table: delete it whole instead.
      redis.call('DEL', hash)
    else
      variadic('HDEL', hash, fields)
    end
    return {OK, removed, 0}
  end
  redis.call('DEL', hash)
  budget = budget - size
end
-- Every remembered answer is named in the requests list (see remember).
while true do
  local requests = redis.call('LPOP', K_REQUESTS, math.max(budget, 1))
  if not requests then
    break
  end
  local answered = {}
  for i, entry in ipairs(requests) do
    answered[i] = string.match(entry, '^%d+:(.*)$') or entry
  end
  variadic('HDEL', K_REPLIES, answered)
  budget = budget - #requests
  if budget <= 0 then
    return {OK, removed, 0}
  end
end
-- The groups' line and rate windows: at most one entry per group that had jobs, deleted whole.
redis.call('DEL', K_REPLIES, K_META, K_WAKE, K_REAPER, K_RATE, K_UNIQUE_EXPIRY, K_GROUP_TURNS, K_GROUP_PARKED,
  K_GROUP_RATE, K_GROUP_RATE_EXPIRY, K_FINISHED, K_EVENTS)
return {OK, removed, 1}
