-- Peer 2, "we'd just use Redis": the profile update and three default rules'
-- conditions in one Lua script, run with EVALSHA against redis-server.
--
-- KEYS[1] = customer key (userId, else anonymousId); ARGV[1] = the event JSON
-- exactly as storepulse receives it. Decoding happens here (cjson, built into
-- Redis) so the peer does the same work as the engine: decode, update, rules.
-- What it leaves out, in its favour: durability before the reply, messageId
-- de-duplication, guardrails beyond a cooldown, identity links.
local ev = cjson.decode(ARGV[1])
local k = KEYS[1]
local name = ev.event or ev.type
local props = ev.properties or {}
local ctx = ev.context or {}
local channel = ctx.channel or 'pos'
local ts = ev.timestamp or ''

-- Days since 1970-01-01 of a 'YYYY-MM-DD...' string (civil calendar).
local function days(s)
  local y, m, d = tonumber(string.sub(s, 1, 4)), tonumber(string.sub(s, 6, 7)), tonumber(string.sub(s, 9, 10))
  if not y or not m or not d then return nil end
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function cents(x) return math.floor((tonumber(x) or 0) * 100 + 0.5) end

redis.call('HINCRBY', k, 'events', 1)
redis.call('HINCRBY', k, 'ch:' .. channel, 1)

if ev.type == 'identify' and type(ev.traits) == 'table' then
  local t = ev.traits
  for _, f in ipairs({'firstName', 'birthday', 'homeStore', 'phone'}) do
    if type(t[f]) == 'string' then redis.call('HSET', k, f, t[f]) end
  end
  if t.smsOptIn ~= nil then redis.call('HSET', k, 'smsOptIn', tostring(t.smsOptIn)) end
end

local total, points = 0, 0
if name == 'Order Completed' then
  local sum = 0
  if type(props.products) == 'table' then
    for _, p in ipairs(props.products) do
      local line = cents(p.price) * (tonumber(p.quantity) or 1)
      sum = sum + line
      if type(p.category) == 'string' then
        redis.call('HINCRBY', k .. ':cat', p.category, line)
        redis.call('HSET', k .. ':catlast', p.category, ts)
      end
    end
  end
  if props.total ~= nil then total = cents(props.total) else total = sum - cents(props.discount) end
  redis.call('HINCRBY', k, 'orders', 1)
  redis.call('HINCRBY', k, 'monetary', total)
  redis.call('HSET', k, 'lastOrder', ts)
  points = redis.call('HINCRBY', k, 'points', math.floor(total / 100))
end

local fired = {}
-- birthday-greeting: on a POS swipe or order, on the birthday, once a year.
if channel == 'pos' and (name == 'Card Swiped' or name == 'Order Completed') and ts ~= '' then
  local bday = redis.call('HGET', k, 'birthday')
  if bday and string.sub(bday, 6, 10) == string.sub(ts, 6, 10) then
    local last = redis.call('HGET', k, 'fired:birthday')
    if not last or days(ts) - days(last) >= 300 then
      redis.call('HSET', k, 'fired:birthday', ts)
      fired[#fired + 1] = 'birthday-greeting'
    end
  end
end
-- cross-sell: a womenswear regular (>= 40 spent) with no cosmetics in 60 days.
if channel == 'pos' and name == 'Card Swiped' then
  local women = tonumber(redis.call('HGET', k .. ':cat', "Women's Clothing") or '0')
  if women >= 4000 then
    local cos = redis.call('HGET', k .. ':catlast', 'Cosmetics')
    if not cos or ts == '' or days(ts) - days(cos) > 60 then fired[#fired + 1] = 'cross-sell' end
  end
end
-- points-milestone: an order takes the points past a multiple of 500.
if channel == 'pos' and name == 'Order Completed' and points >= 500 and points % 500 < total / 100 then
  fired[#fired + 1] = 'points-milestone'
end

local id = cjson.encode(ev.messageId or '')
if #fired == 0 then return '{"type":"ack","messageId":' .. id .. '}' end
local parts = {}
for i, r in ipairs(fired) do parts[i] = '{"rule":"' .. r .. '","channel":"pos"}' end
return '{"type":"actions","messageId":' .. id .. ',"actions":[' .. table.concat(parts, ',') .. ']}'
