-- ARGV: prefix, now, batch. Deletes up to `batch` sessions expired at `now`; returns
-- how many index entries were removed.
local p = ARGV[1]
local ids = redis.call("ZRANGEBYSCORE", p .. "x", "-inf", ARGV[2], "LIMIT", 0, ARGV[3])
for _, id in ipairs(ids) do
  delete_one(p, id)
end
return #ids
