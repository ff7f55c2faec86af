-- KEYS: meta, queue, seen, admitted, admits, gone
-- ARGV: now_override, capacity, admit_per_minute (0: none), session_ttl_ms,
--       heartbeat_timeout_ms, max_evictions, eta_window_ms, gone_keep_ms,
--       known_epoch (''), restore_grace_ms
-- Returns: {now, epoch, expired, queue_length, active, recent, {evicted...},
--           {visitor, ticket, visitor, ticket, ...}}
local meta, queue, seen, admitted, admits, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local capacity = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local timeout = tonumber(ARGV[5])
local window = tonumber(ARGV[7])

local now = equeue_now_ms()
local epoch = equeue_epoch(meta, now)
equeue_hold_if_lost(meta, epoch, ARGV[9], tonumber(ARGV[10]))

local expired = redis.call('ZREMRANGEBYSCORE', admitted, '-inf', equeue_int(now))

-- Eviction is a range query on last-seen times, never a scan of the queue.
local evicted = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. equeue_int(now - timeout),
  'LIMIT', 0, tonumber(ARGV[6]))
for _, visitor in ipairs(evicted) do
  redis.call('ZREM', queue, visitor)
  redis.call('ZREM', seen, visitor)
  equeue_gone(gone, visitor, now)
end
if #evicted > 0 then
  redis.call('HINCRBY', meta, 'evicted_total', #evicted)
end

local slots = capacity - redis.call('ZCARD', admitted)
local rate_room = equeue_rate_room(admits, now, per_minute)
if rate_room >= 0 and rate_room < slots then
  slots = rate_room
end
if equeue_holding(meta, now) then
  slots = 0
end
local let_in = {}
if slots > 0 then
  local head = redis.call('ZPOPMIN', queue, slots)
  for i = 1, #head, 2 do
    local visitor, ticket = head[i], tonumber(head[i + 1])
    equeue_admit(meta, seen, admitted, admits, gone, visitor, ticket, now, ttl)
    let_in[#let_in + 1] = visitor
    let_in[#let_in + 1] = ticket
  end
end

local keep = window
if keep < 60000 then
  keep = 60000
end
redis.call('ZREMRANGEBYSCORE', admits, '-inf', '(' .. equeue_int(now - keep))
redis.call('ZREMRANGEBYSCORE', gone, '-inf', '(' .. equeue_int(now - tonumber(ARGV[8])))
local recent = redis.call('ZCOUNT', admits, '(' .. equeue_int(now - window), '+inf')

return {now, epoch, expired, redis.call('ZCARD', queue), redis.call('ZCARD', admitted),
  recent, evicted, let_in}
