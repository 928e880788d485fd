-- ARGV: prefix, id, expected, new, at, prev_until, expires, ttl_ms, grace_ms.
-- Compare-and-swap: returns 0 unless the current secret is still `expected`.
local p, id = ARGV[1], ARGV[2]
local skey = p .. "s:" .. id
if redis.call("HGET", skey, "secret") ~= ARGV[3] then
  return 0
end
local dropped = redis.call("HGET", skey, "prev")
if dropped and dropped ~= "" then
  redis.call("DEL", p .. "h:" .. dropped)
end
redis.call("HSET", skey, "secret", ARGV[4], "prev", ARGV[3], "prev_until", ARGV[6],
  "last_seen", ARGV[5], "rotated", ARGV[5], "expires", ARGV[7])
redis.call("PEXPIRE", skey, ARGV[8])
redis.call("SET", p .. "h:" .. ARGV[4], id, "PX", ARGV[8])
redis.call("PEXPIRE", p .. "h:" .. ARGV[3], ARGV[9])
redis.call("ZADD", p .. "x", ARGV[7], id)
return 1
