-- KEYS: meta, queue, seen, admitted, admits, gone
-- ARGV: now_override, visitor_id, capacity, admit_per_minute (0: none),
--       session_ttl_ms, claim_ticket (''), restore_only ('1' or ''),
--       known_epoch (''), restore_grace_ms
-- Returns: {status, ticket|-1, position|-1, queue_length, epoch, admitted_until|-1,
--           now, restored(0|1)}
local meta, queue, seen, admitted, admits, gone = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5], KEYS[6]
local visitor = ARGV[2]
local capacity = tonumber(ARGV[3])
local per_minute = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])

local now = equeue_now_ms()
local epoch = equeue_epoch(meta, now)
equeue_hold_if_lost(meta, epoch, ARGV[8], tonumber(ARGV[9]))

local until_ms = redis.call('ZSCORE', admitted, visitor)
if until_ms and tonumber(until_ms) > now then
  return {'admitted', -1, 0, redis.call('ZCARD', queue), epoch, tonumber(until_ms), now, 0}
end

local ticket = redis.call('ZSCORE', queue, visitor)
if ticket then
  redis.call('ZADD', seen, equeue_int(now), visitor)
  local rank = redis.call('ZRANK', queue, visitor)
  return {'queued', tonumber(ticket), rank + 1, redis.call('ZCARD', queue), epoch, -1, now, 0}
end

if until_ms then
  -- A session that ended but was not yet swept by a tick: forget it.
  redis.call('ZREM', admitted, visitor)
end

local was_restored = 0
if ARGV[6] ~= '' and not redis.call('ZSCORE', gone, visitor) then
  ticket = tonumber(ARGV[6])
  was_restored = 1
  -- Move the counter past the restored ticket.
  if tonumber(redis.call('HGET', meta, 'next_ticket')) < ticket then
    redis.call('HSET', meta, 'next_ticket', equeue_int(ticket))
  end
end
if not ticket then
  if ARGV[7] == '1' then
    return {'unknown', -1, -1, redis.call('ZCARD', queue), epoch, -1, now, 0}
  end
  ticket = equeue_next_ticket(meta, now)
end

local waiting = redis.call('ZCARD', queue)
if waiting == 0 and equeue_active(admitted, now) < capacity
    and equeue_rate_room(admits, now, per_minute) ~= 0
    and not equeue_holding(meta, now) then
  equeue_admit(meta, seen, admitted, admits, gone, visitor, ticket, now, ttl)
  return {'admitted', -1, 0, 0, epoch, now + ttl, now, was_restored}
end

redis.call('ZADD', queue, equeue_int(ticket), visitor)
redis.call('ZADD', seen, equeue_int(now), visitor)
local rank = redis.call('ZRANK', queue, visitor)
return {'queued', ticket, rank + 1, waiting + 1, epoch, -1, now, was_restored}
