-- palisade sliding window (mirrors palisade_policy::ratelimit::sliding_window).
-- KEYS[1]: the key's hash {w = window index, p = previous count, c = current count}
-- ARGV: limit, window_ms, now_ms ("" = read Redis TIME), expiry slack ms
-- Returns {allowed (1/0), elapsed_ms, previous, current_before}.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local index = math.floor(now / window)
local elapsed = now - index * window
local stored = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local w = tonumber(stored[1])
local previous = tonumber(stored[2]) or 0
local current = tonumber(stored[3]) or 0
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
redis.call('HSET', KEYS[1], 'w', index, 'p', previous, 'c', current + 1)
-- The key goes idle at the end of the next window: the same moment for every request of a
-- window, and HSET keeps a key's expiry, so it is set when the key or its window is new.
-- (PEXPIRE is about a quarter of the script's cost in Redis.)
if w ~= index then
  local idle_at = (index + 2) * window
  redis.call('PEXPIRE', KEYS[1], idle_at - now + tonumber(ARGV[4]))
end
return {1, elapsed, previous, current}
