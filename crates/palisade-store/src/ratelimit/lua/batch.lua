-- palisade rate limits: many decisions in one call, each exactly as palisade_policy's
-- sliding_window, fixed_window and token_bucket functions decide it.
-- KEYS[i]: entry i's key. The algorithm and quota are part of a key's name, so a key that
--          appears more than once always comes with the same algorithm and quota.
-- ARGV[1]: expiry slack ms; then 5 values per entry: algorithm ("sw", "fw" or "tb"), limit,
--          window_ms, now_ms ("" = read Redis TIME, once per call), and n, how many
--          decisions in a row the entry stands for (requests of one key at one moment).
-- Decisions are taken in order, with the same results as one script call per decision:
-- each key is read once, its counts change in Lua, and it is written once at the end.
-- An entry's n decisions see the same moment, so the first `allowed` of them are allowed
-- and the rest refused (a refusal counts nothing); the entry is decided in one step.
-- Returns 4 integers per entry, in order, from which palisade rebuilds each decision i
-- (0-based; used = min(i, allowed)):
--   sw {allowed, elapsed_ms, previous, current}  decision i: current + used before it
--   fw {allowed, elapsed_ms, count, 0}           decision i: count + used before it
--   tb {allowed, tokens, carry, 0}               decision i: tokens - used (after refilling)
-- An entry whose key holds something other than palisade's counter (WRONGTYPE, or a hash
-- whose fields are not whole numbers from 0 up: another program wrote it, or a key_prefix
-- clashes) answers {-1, 0, 0, 0}, is left as it is, and the other entries are decided as
-- usual.
local slack = tonumber(ARGV[1])
local redis_now = nil

local function clock(given)
  local now = tonumber(given)
  if now then
    return now
  end
  if not redis_now then
    local time = redis.call('TIME')
    redis_now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return redis_now
end

-- How many of n decisions fit in `room`.
local function fitting(room, n)
  if room <= 0 then
    return 0
  end
  return math.min(room, n)
end

-- The state of each key read so far, and the keys in the order they were first read.
local states = {}
local order = {}

-- A stored field as palisade writes it: a whole number from 0 up (within Lua's exact
-- integers). Returns the number (nil when the field is absent) and whether it is usable.
local MAX_EXACT = 9007199254740991
local function whole(raw)
  if not raw then
    return nil, true
  end
  local n = tonumber(raw)
  -- `n % 1` is not 0 for a fraction, nor for nan or an infinity.
  if n and n >= 0 and n <= MAX_EXACT and n % 1 == 0 then
    return n, true
  end
  return nil, false
end

local function load(key, algorithm)
  local state = states[key]
  if state then
    return state
  end
  local is_bucket = algorithm == 'tb'
  local stored
  if is_bucket then
    stored = redis.pcall('HMGET', key, 't', 'k', 'r')
  else
    stored = redis.pcall('HMGET', key, 'w', 'p', 'c')
  end
  local a, b, c, usable_a, usable_b, usable_c
  if not stored.err then
    a, usable_a = whole(stored[1])
    b, usable_b = whole(stored[2])
    c, usable_c = whole(stored[3])
  end
  if stored.err or not (usable_a and usable_b and usable_c) then
    state = {unusable = true}
    states[key] = state
    return state
  end
  if is_bucket then
    state = {t = a, k = b, r = c}
  else
    state = {w = a, p = b, c = c}
  end
  state.algorithm = algorithm
  states[key] = state
  order[#order + 1] = key
  return state
end

-- Windows aligned to the epoch; the previous window's count weighted by its unelapsed part.
local function sliding(state, limit, window, now, n)
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local w = state.w
  local previous = state.p or 0
  local current = state.c or 0
  if w == nil then
    previous, current = 0, 0
  elseif index < w then
    index, elapsed = w, 0
  elseif index == w + 1 then
    previous, current = current, 0
  elseif index > w + 1 then
    previous, current = 0, 0
  end
  local weighted = math.floor(previous * (window - elapsed) / window)
  local allowed = fitting(limit - weighted - current, n)
  if allowed > 0 then
    -- The key goes idle at the end of the next window: the same moment for every request
    -- of a window, so the expiry is set only when the key or its window is new, and only
    -- the count is written while the window stays.
    if w ~= index then
      state.expire = (index + 2) * window - now + slack
      state.whole = true
    end
    state.w, state.p, state.c, state.dirty = index, previous, current + allowed, true
  end
  return allowed, elapsed, previous, current
end

local function fixed(state, limit, window, now, n)
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local w = state.w
  local count = state.c or 0
  if w == nil then
    count = 0
  elseif index < w then
    index, elapsed = w, 0
  elseif index > w then
    count = 0
  end
  local allowed = fitting(limit - count, n)
  if allowed > 0 then
    if w ~= index then
      state.expire = (index + 1) * window - now + slack
      state.whole = true
    end
    state.w, state.c, state.dirty = index, count + allowed, true
  end
  return allowed, elapsed, count, 0
end

local function bucket(state, limit, window, now, n)
  local tokens = state.t
  local carry = state.k or 0
  local refilled_at = state.r or now
  if tokens == nil then
    tokens, carry, refilled_at = limit, 0, now
  end
  local elapsed = math.max(0, now - refilled_at)
  refilled_at = math.max(refilled_at, now)
  if elapsed >= window then
    tokens, carry = limit, 0
  else
    local progress = elapsed * limit + carry
    local earned = math.floor(progress / window)
    tokens = tokens + earned
    carry = progress - earned * window
    if tokens >= limit then
      tokens, carry = limit, 0
    end
  end
  local allowed = fitting(tokens, n)
  if allowed > 0 then
    local left = tokens - allowed
    state.t, state.k, state.r, state.dirty, state.whole = left, carry, refilled_at, true, true
    state.expire = math.ceil(((limit - left) * window - carry) / limit) + slack
  end
  return allowed, tokens, carry, 0
end

local replies = {}
local size = 0
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 5
  local algorithm = ARGV[at]
  local decide
  if algorithm == 'sw' then
    decide = sliding
  elseif algorithm == 'fw' then
    decide = fixed
  elseif algorithm == 'tb' then
    decide = bucket
  else
    return redis.error_reply('unknown rate-limit algorithm ' .. tostring(algorithm))
  end
  local state = load(key, algorithm)
  local a, b, c, d = -1, 0, 0, 0
  if not state.unusable then
    local limit, window = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    local now = clock(ARGV[at + 3])
    a, b, c, d = decide(state, limit, window, now, tonumber(ARGV[at + 4]))
  end
  replies[size + 1], replies[size + 2], replies[size + 3], replies[size + 4] = a, b, c, d
  size = size + 4
end

for _, key in ipairs(order) do
  local state = states[key]
  if state.dirty then
    if state.algorithm == 'tb' then
      redis.call('HSET', key, 't', state.t, 'k', state.k, 'r', state.r)
    elseif not state.whole then
      redis.call('HSET', key, 'c', state.c)
    elseif state.algorithm == 'sw' then
      redis.call('HSET', key, 'w', state.w, 'p', state.p, 'c', state.c)
    else
      redis.call('HSET', key, 'w', state.w, 'c', state.c)
    end
    if state.expire then
      redis.call('PEXPIRE', key, state.expire)
    end
  end
end
return replies
