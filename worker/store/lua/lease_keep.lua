-- Renew or give up a lease held under a key whose value is the holder's token.
-- KEYS[1] the lease key  ARGV[1] the holder's token  ARGV[2] ms to renew for (0: give it up)
-- Returns 1 when the token still held the lease (renewed, or given up), 0 when not (it
-- ran out and may be another holder's now: the caller has lost it).
-- Vocabulary: none (the reply is a number)
local v = redis.call("GET", KEYS[1])
if not v or string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
else
  redis.call("DEL", KEYS[1])
end
return 1
