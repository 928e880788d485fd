-- ARGV: prefix, id, now, expires, ttl_ms. Returns 1, or 0 when the session is gone.
local p, id = ARGV[1], ARGV[2]
local skey = p .. "s:" .. id
local secret = redis.call("HGET", skey, "secret")
if not secret then
  return 0
end
redis.call("HSET", skey, "last_seen", ARGV[3], "expires", ARGV[4])
redis.call("PEXPIRE", skey, ARGV[5])
redis.call("PEXPIRE", p .. "h:" .. secret, ARGV[5])
redis.call("ZADD", p .. "x", ARGV[4], id)
return 1
