-- ARGV: prefix, user. Returns how many sessions existed.
local p = ARGV[1]
local n = 0
for _, id in ipairs(redis.call("SMEMBERS", p .. "u:" .. ARGV[2])) do
  n = n + delete_one(p, id)
end
redis.call("DEL", p .. "u:" .. ARGV[2])
return n
