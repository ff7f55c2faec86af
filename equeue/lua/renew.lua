-- KEYS: admitted
-- ARGV: now_override, visitor_id, session_ttl_ms
-- Returns the new expiry in ms, or -1 if the visitor is not admitted.
local now = equeue_now_ms()
local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not until_ms or tonumber(until_ms) <= now then
  return -1
end
local renewed = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], 'XX', equeue_int(renewed), ARGV[2])
return renewed
