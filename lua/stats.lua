-- STATS: a consistent snapshot of one queue (read-only).
-- Reply: {OK, pending, scheduled, retrying, active, dead, completed, enqueued, processed,
--         failed, dead_total, paused (0/1), latency_ms (age of the job next in line, 0 if none),
--         rate limit ("N/window_ms", '' if none), concurrency limit ('' if none), cancelled,
--         events (the event stream's cap, 0 when the queue keeps none), group rate limit,
--         group concurrency limit}
local now = now_ms()
local meta = redis.call('HMGET', K_META, 'enqueued', 'processed', 'failed', 'dead', 'paused', 'rate', 'concurrency',
  'cancelled', 'events', 'group_rate', 'group_concurrency')
local latency = 0
local head = next_in_line()
if head then
  latency = math.max(0, now - (run_at(head) or now))
end
return {
  OK,
  pending_count(),
  redis.call('ZCARD', K_SCHEDULED),
  redis.call('ZCARD', K_RETRYING),
  count_by_id(K_TOKENS),
  redis.call('ZCARD', K_DEAD),
  redis.call('ZCARD', K_COMPLETED),
  tonumber(meta[1] or '0'),
  tonumber(meta[2] or '0'),
  tonumber(meta[3] or '0'),
  tonumber(meta[4] or '0'),
  meta[5] == '1' and 1 or 0,
  int(latency),
  meta[6] or '',
  meta[7] or '',
  tonumber(meta[8] or '0'),
  tonumber(meta[9] or '0'),
  meta[10] or '',
  meta[11] or '',
}
