-- ARGV: prefix, id. Returns 1 if the session existed.
return delete_one(ARGV[1], ARGV[2])
