-- palisade token bucket (mirrors palisade_policy::ratelimit::token_bucket).
-- KEYS[1]: the key's hash {t = tokens, k = carry, r = refilled_at ms}
-- ARGV: limit, window_ms, now_ms ("" = read Redis TIME), expiry slack ms
-- Returns {allowed (1/0), tokens_before, carry} after refilling.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local stored = redis.call('HMGET', KEYS[1], 't', 'k', 'r')
local tokens = tonumber(stored[1])
local carry = tonumber(stored[2]) or 0
local refilled_at = tonumber(stored[3]) or now
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
  return {0, tokens, carry}
end
local left = tokens - 1
redis.call('HSET', KEYS[1], 't', left, 'k', carry, 'r', refilled_at)
local until_full = math.ceil(((limit - left) * window - carry) / limit)
redis.call('PEXPIRE', KEYS[1], until_full + tonumber(ARGV[4]))
return {1, tokens, carry}
