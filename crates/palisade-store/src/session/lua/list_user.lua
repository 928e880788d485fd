-- ARGV: prefix, user. Returns one field list (plus "id") per live session key.
local p = ARGV[1]
local out = {}
for _, id in ipairs(redis.call("SMEMBERS", p .. "u:" .. ARGV[2])) do
  local fields = redis.call("HGETALL", p .. "s:" .. id)
  if #fields > 0 then
    table.insert(fields, "id")
    table.insert(fields, id)
    table.insert(out, fields)
  end
end
return out
