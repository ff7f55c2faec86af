-- KEYS: meta, queue, admitted, admits
-- ARGV: now_override, eta_window_ms, visitor_id...
-- Returns: {now, epoch, queue_length, active, recent, issued_total, admitted_total,
--           evicted_total, then per visitor: ticket|-1, rank|-1, admitted_until|-1}
local meta, queue, admitted, admits = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local now = equeue_now_ms()
local epoch = equeue_epoch(meta, now)
local counters = redis.call('HMGET', meta, 'issued_total', 'admitted_total', 'evicted_total')
local recent = redis.call('ZCOUNT', admits, '(' .. equeue_int(now - tonumber(ARGV[2])), '+inf')
local out = {now, epoch, redis.call('ZCARD', queue), equeue_active(admitted, now), recent,
  tonumber(counters[1]) or 0, tonumber(counters[2]) or 0, tonumber(counters[3]) or 0}

for i = 3, #ARGV do
  local visitor = ARGV[i]
  local ticket = redis.call('ZSCORE', queue, visitor)
  if ticket then
    out[#out + 1] = tonumber(ticket)
    out[#out + 1] = redis.call('ZRANK', queue, visitor)
    out[#out + 1] = -1
  else
    local until_ms = redis.call('ZSCORE', admitted, visitor)
    out[#out + 1] = -1
    out[#out + 1] = -1
    if until_ms and tonumber(until_ms) > now then
      out[#out + 1] = tonumber(until_ms)
    else
      out[#out + 1] = -1
    end
  end
end
return out
