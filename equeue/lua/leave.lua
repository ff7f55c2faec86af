-- KEYS: queue, seen, admitted, gone
-- ARGV: now_override, visitor_id
-- Returns how many places or slots were given back (0 or 1).
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
removed = removed + redis.call('ZREM', KEYS[3], ARGV[2])
if removed > 0 then
  equeue_gone(KEYS[4], ARGV[2], equeue_now_ms())
  return 1
end
return 0
