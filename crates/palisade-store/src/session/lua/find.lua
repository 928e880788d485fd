-- ARGV: prefix, secret hash. Returns the session's fields plus "id", or nil.
local p = ARGV[1]
local id = redis.call("GET", p .. "h:" .. ARGV[2])
if not id then
  return false
end
local fields = redis.call("HGETALL", p .. "s:" .. id)
if #fields == 0 then
  return false
end
table.insert(fields, "id")
table.insert(fields, id)
return fields
