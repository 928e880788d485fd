-- ARGV: prefix, id, user, roles, secret, created, last_seen, rotated, expires, ttl_ms
local p, id = ARGV[1], ARGV[2]
local skey = p .. "s:" .. id
redis.call("HSET", skey, "user", ARGV[3], "roles", ARGV[4], "secret", ARGV[5], "prev", "",
  "prev_until", "0", "created", ARGV[6], "last_seen", ARGV[7], "rotated", ARGV[8],
  "expires", ARGV[9])
redis.call("PEXPIRE", skey, ARGV[10])
redis.call("SET", p .. "h:" .. ARGV[5], id, "PX", ARGV[10])
redis.call("SADD", p .. "u:" .. ARGV[3], id)
redis.call("HSET", p .. "w", id, ARGV[3])
redis.call("ZADD", p .. "x", ARGV[9], id)
return 1
