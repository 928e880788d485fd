-- Shared by the session scripts. Key layout under prefix p:
--   p.."s:"..id    hash: one session (TTL = time to expiry)
--   p.."h:"..hash  string: secret hash -> id (TTL; the previous secret's = its grace)
--   p.."u:"..user  set: ids of a user's sessions
--   p.."w"         hash: id -> user (to clean the user set once the session key expired)
--   p.."x"         sorted set: id scored by expiry, for sweeping
local function delete_one(p, id)
  local skey = p .. "s:" .. id
  local hashes = redis.call("HMGET", skey, "secret", "prev")
  local existed = redis.call("DEL", skey)
  for _, h in ipairs(hashes) do
    if h and h ~= "" and redis.call("GET", p .. "h:" .. h) == id then
      redis.call("DEL", p .. "h:" .. h)
    end
  end
  local user = redis.call("HGET", p .. "w", id)
  if user then
    redis.call("SREM", p .. "u:" .. user, id)
  end
  redis.call("HDEL", p .. "w", id)
  redis.call("ZREM", p .. "x", id)
  return existed
end
