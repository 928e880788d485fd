-- palisade fixed window (mirrors palisade_policy::ratelimit::fixed_window).
-- KEYS[1]: the key's hash {w = window index, c = count}
-- ARGV: limit, window_ms, now_ms ("" = read Redis TIME), expiry slack ms
-- Returns {allowed (1/0), elapsed_ms, count_before}.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local index = math.floor(now / window)
local elapsed = now - index * window
local stored = redis.call('HMGET', KEYS[1], 'w', 'c')
local w = tonumber(stored[1])
local count = tonumber(stored[2]) or 0
if w == nil then
  count = 0
elseif index < w then
  index, elapsed = w, 0
elseif index > w then
  count = 0
end

if count >= limit then
  return {0, elapsed, count}
end
redis.call('HSET', KEYS[1], 'w', index, 'c', count + 1)
-- Idle at the window's end, the same moment for every request of a window, and HSET keeps
-- a key's expiry: set it when the key or its window is new.
if w ~= index then
  redis.call('PEXPIRE', KEYS[1], (index + 1) * window - now + tonumber(ARGV[4]))
end
return {1, elapsed, count}
