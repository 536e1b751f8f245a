-- EXTEND: renew the leases of many jobs in one call (one call per worker per heartbeat).
-- ARGV: lease_ms, then per lease: token, n, then n ids
-- Reply: {OK, deadline_ms, status per job (OK or LEASE_LOST)}
-- A lease never shrinks (GT): a heartbeat cannot undo a longer extension a handler asked for.
-- Delivered twice, it renews twice and answers whether each job is still held: no memory needed.
local lease_ms = tonumber(ARGV[1])
local held, tokens, statuses = check_leases(2)
if not lease_ms or lease_ms < 1 or not held then
  return bad('expected lease_ms, then per lease: token, n, n ids')
end
local deadline = int(now_ms() + lease_ms)
-- Renewing a lease renews every job of its batch; the worker names all the jobs it holds.
local renewed, scored = {}, {}
for _, token in ipairs(tokens) do
  if not renewed[token] then
    renewed[token] = true
    scored[#scored + 1] = deadline
    scored[#scored + 1] = token
  end
end
variadic('ZADD', K_ACTIVE, scored, {'XX', 'GT'})
return status_reply(statuses, deadline)
