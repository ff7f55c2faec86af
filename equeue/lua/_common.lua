-- Shared helpers, prefixed to every equeue script.
-- ARGV[1] is always a time override in ms ('' in production: the time then comes
-- from Redis TIME, so application servers with skewed clocks agree).

local function equeue_now_ms()
  if ARGV[1] ~= '' then
    return tonumber(ARGV[1])
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function equeue_int(x)
  return string.format('%.0f', x)
end

-- The epoch is the ticket counter's starting value, taken from the clock when the
-- room's data is first created. Tickets of a lost generation are therefore always
-- smaller than any ticket of the next one.
local function equeue_epoch(meta, now)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then
    return tonumber(epoch)
  end
  epoch = now * 1000
  redis.call('HSET', meta, 'epoch', equeue_int(epoch), 'next_ticket', equeue_int(epoch))
  return epoch
end

-- A caller that knew an older epoch has just seen the room's data come back
-- empty: for restore_grace_ms after the new epoch began, nobody is admitted, so
-- that every server process can give back the tickets of the waiters it holds
-- before anyone behind them gets in. Set once per epoch, whoever notices first.
local function equeue_hold_if_lost(meta, epoch, known, grace)
  if known ~= '' and tonumber(known) ~= epoch and grace > 0 then
    redis.call('HSETNX', meta, 'hold_until', equeue_int(epoch / 1000 + grace))
  end
end

local function equeue_holding(meta, now)
  local until_ms = redis.call('HGET', meta, 'hold_until')
  return until_ms ~= false and tonumber(until_ms) > now
end

local function equeue_active(admitted, now)
  return redis.call('ZCOUNT', admitted, '(' .. equeue_int(now), '+inf')
end

local function equeue_rate_room(admits, now, per_minute)
  if per_minute <= 0 then
    return -1
  end
  local used = redis.call('ZCOUNT', admits, '(' .. equeue_int(now - 60000), '+inf')
  return per_minute - used
end

-- Tickets never fall behind the clock (ms * 1000), so tickets issued after Redis
-- rolled back to an older snapshot can never collide with the lost ones that
-- visitors' passes still claim.
local function equeue_next_ticket(meta, now)
  redis.call('HINCRBY', meta, 'issued_total', 1)
  local ticket = redis.call('HINCRBY', meta, 'next_ticket', 1)
  if ticket < now * 1000 then
    ticket = now * 1000
    redis.call('HSET', meta, 'next_ticket', equeue_int(ticket))
  end
  return ticket
end

-- A visitor who leaves the queue (admitted, evicted, gone by choice) is remembered
-- as gone for as long as their pass may still claim their old ticket: such a claim
-- must not bring them back. Only a visitor the store has no trace of at all (its
-- data was lost or rolled back) gets a claimed ticket restored.
local function equeue_gone(gone, visitor, now)
  redis.call('ZADD', gone, equeue_int(now), visitor)
end

local function equeue_admit(meta, seen, admitted, admits, gone, visitor, ticket, now, ttl)
  redis.call('ZADD', admitted, equeue_int(now + ttl), visitor)
  redis.call('ZREM', seen, visitor)
  redis.call('ZADD', admits, equeue_int(now), equeue_int(ticket))
  redis.call('HINCRBY', meta, 'admitted_total', 1)
  equeue_gone(gone, visitor, now)
end
