-- DEAD_LIST: dead jobs, most recent first (read-only).
-- ARGV: offset, limit
-- Reply: {OK, total, then per job: id, failed_at_ms, record (properties then envelope, see
-- K_JOBS), attempts, last_error}
local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not offset or offset < 0 or not limit or limit < 1 then
  return bad('expected offset >= 0, limit >= 1')
end
local reply = {OK, redis.call('ZCARD', K_DEAD)}
local page = redis.call('ZREVRANGE', K_DEAD, offset, offset + limit - 1, 'WITHSCORES')
for i = 1, #page, 2 do
  local id = page[i]
  reply[#reply + 1] = id
  reply[#reply + 1] = page[i + 1]
  reply[#reply + 1] = redis.call('HGET', K_JOBS, id) or ''
  reply[#reply + 1] = tonumber(redis.call('HGET', K_FAILURES, id) or '0')
  reply[#reply + 1] = redis.call('HGET', K_ERRORS, id) or ''
end
return reply
