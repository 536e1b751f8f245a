-- DEAD_PURGE: forget up to `limit` dead jobs, oldest first (the client repeats until 0).
-- ARGV: limit
-- Reply: {OK, purged}; a re-sent call gets the first answer.
local memo = remembered()
if memo then
  return memo
end
local limit = tonumber(ARGV[1])
if not limit or limit < 1 or #ARGV ~= 1 then
  return bad('expected limit >= 1')
end
local ids = redis.call('ZRANGE', K_DEAD, 0, limit - 1)
if #ids > 0 then
  variadic('ZREM', K_DEAD, ids)
  forget(ids)
  return remember({OK, #ids})
end
return {OK, #ids}
