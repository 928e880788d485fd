-- palisade rate limits: many decisions in one call, each exactly as palisade_policy's
-- sliding_window, fixed_window and token_bucket functions decide it.
-- KEYS[i]: entry i's key. The algorithm and quota are part of a key's name, so a key that
--          appears more than once always comes with the same algorithm and quota.
-- ARGV[1]: expiry slack ms; then 5 values per entry: algorithm ("sw", "fw" or "tb"), limit,
--          window_ms, now_ms ("" = read Redis TIME, once per call), and how many decisions
--          in a row the entry stands for (requests of one key at one moment).
-- Decisions are taken in order, with the same results as one script call per decision:
-- each key is read once, its counts change in Lua, and it is written once at the end.
-- Returns 4 integers per decision, entry after entry:
--   sw {allowed (1/0), elapsed_ms, previous, current_before}
--   fw {allowed, elapsed_ms, count_before, 0}
--   tb {allowed, tokens_before, carry, 0} (after refilling)
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

-- The state of each key read so far, and the keys in the order they were first read.
local states = {}
local order = {}

local function load(key, algorithm)
  local state = states[key]
  if state then
    return state
  end
  if algorithm == 'tb' then
    local stored = redis.call('HMGET', key, 't', 'k', 'r')
    state = {t = tonumber(stored[1]), k = tonumber(stored[2]), r = tonumber(stored[3])}
  else
    local stored = redis.call('HMGET', key, 'w', 'p', 'c')
    state = {w = tonumber(stored[1]), p = tonumber(stored[2]), c = tonumber(stored[3])}
  end
  state.algorithm = algorithm
  states[key] = state
  order[#order + 1] = key
  return state
end

-- Windows aligned to the epoch; the previous window's count weighted by its unelapsed part.
local function sliding(state, limit, window, now)
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
  if weighted + current >= limit then
    return {0, elapsed, previous, current}
  end
  -- The key goes idle at the end of the next window: the same moment for every request of
  -- a window, so the expiry is set only when the key or its window is new.
  if w ~= index then
    state.expire = (index + 2) * window - now + slack
  end
  state.w, state.p, state.c, state.dirty = index, previous, current + 1, true
  return {1, elapsed, previous, current}
end

local function fixed(state, limit, window, now)
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
  if count >= limit then
    return {0, elapsed, count, 0}
  end
  if w ~= index then
    state.expire = (index + 1) * window - now + slack
  end
  state.w, state.c, state.dirty = index, count + 1, true
  return {1, elapsed, count, 0}
end

local function bucket(state, limit, window, now)
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
  if tokens <= 0 then
    return {0, tokens, carry, 0}
  end
  local left = tokens - 1
  state.t, state.k, state.r, state.dirty = left, carry, refilled_at, true
  state.expire = math.ceil(((limit - left) * window - carry) / limit) + slack
  return {1, tokens, carry, 0}
end

local deciders = {sw = sliding, fw = fixed, tb = bucket}
local replies = {}
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 5
  local algorithm = ARGV[at]
  local decide = deciders[algorithm]
  if not decide then
    return redis.error_reply('unknown rate-limit algorithm ' .. tostring(algorithm))
  end
  local state = load(key, algorithm)
  local limit, window = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local now = clock(ARGV[at + 3])
  for _ = 1, tonumber(ARGV[at + 4]) do
    local reply = decide(state, limit, window, now)
    for j = 1, 4 do
      replies[#replies + 1] = reply[j]
    end
  end
end

for _, key in ipairs(order) do
  local state = states[key]
  if state.dirty then
    if state.algorithm == 'tb' then
      redis.call('HSET', key, 't', state.t, 'k', state.k, 'r', state.r)
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
