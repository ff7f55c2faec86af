-- KEYS: meta, queue, seen, admitted, history
-- ARGV: now_override, visitor_id, history_length, history_ttl_ms
-- Returns: {status, ticket|-1, position|-1, queue_length, epoch, admitted_until|-1, now}
local meta, queue, seen, admitted, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local visitor = ARGV[2]

local now = equeue_now_ms()
local epoch = equeue_epoch(meta, now)

redis.call('LPUSH', history, equeue_int(now))
redis.call('LTRIM', history, 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', history, ARGV[4])

local length = redis.call('ZCARD', queue)
local ticket = redis.call('ZSCORE', queue, visitor)
if ticket then
  redis.call('ZADD', seen, equeue_int(now), visitor)
  local rank = redis.call('ZRANK', queue, visitor)
  return {'queued', tonumber(ticket), rank + 1, length, epoch, -1, now}
end

local until_ms = redis.call('ZSCORE', admitted, visitor)
if until_ms and tonumber(until_ms) > now then
  return {'admitted', -1, 0, length, epoch, tonumber(until_ms), now}
end
return {'unknown', -1, -1, length, epoch, -1, now}
