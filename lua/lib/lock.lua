-- LOCK (script library): a lock held by one owner token until its TTL runs out.
-- KEYS[1]: the lock (a string holding the owner's token; any key, yours to name)
-- ARGV: operation, then its arguments:
--   acquire <owner> <ttl_ms>  take a free lock, or renew it when <owner> holds it already
--   extend  <owner> <ttl_ms>  set the TTL of a lock <owner> holds
--   release <owner>           free a lock <owner> holds
--   force                     free the lock whoever holds it (operators)
--   status                    who holds it
-- Reply: {done (0/1), owner ('' when free), ttl_ms left (-1 when free)} as things stand after the
-- call, or {-1, message} for bad arguments (nothing written).
local op, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local takes_owner = op == 'acquire' or op == 'extend' or op == 'release'
local takes_ttl = op == 'acquire' or op == 'extend'
if #KEYS ~= 1 or not (takes_owner or op == 'force' or op == 'status')
    or (takes_owner and (not owner or owner == ''))
    or (takes_ttl and (not ttl or ttl < 1 or ttl % 1 ~= 0)) then
  return {-1, 'expected one key, then acquire|extend <owner> <ttl_ms>, release <owner>, force or status'}
end
local key = KEYS[1]
local holder = redis.call('GET', key)
local done = 0
if op == 'acquire' and (not holder or holder == owner) then
  redis.call('SET', key, owner, 'PX', ttl)
  done = 1
elseif op == 'extend' and holder == owner then
  redis.call('PEXPIRE', key, ttl)
  done = 1
elseif (op == 'release' and holder == owner) or (op == 'force' and holder) then
  redis.call('DEL', key)
  done = 1
end
holder = redis.call('GET', key)
if not holder then
  return {done, '', -1}
end
return {done, holder, redis.call('PTTL', key)}
