-- A digest's send raised after its take (a bug: not a relay's refusal, not Redis out of
-- reach): count one crash on each hold the digest still owns, with the error's last line,
-- so the take that finds a hold past the bound lists it (worker/app/digest.py) instead of
-- the sweeper bringing it back into new windows until its pickup day has passed.
-- ARGV[1] digest token  ARGV[2] the error's last line  ARGV[3] the key prefix of a hold
-- (`hold:{hold_id}` without the id)  ARGV[4..] the holds the digest took
-- Returns how many holds were counted (a hold fenced out since is not).
-- Vocabulary: HoldStatus (the status it reads)
local counted = 0
for i = 4, #ARGV do
  local hold = ARGV[3] .. ARGV[i]
  if redis.call("HGET", hold, "status") == "sending" and redis.call("HGET", hold, "token") == ARGV[1]
      and redis.call("HGET", hold, "digest") == ARGV[1] then
    redis.call("HINCRBY", hold, "crashes", 1)
    redis.call("HSET", hold, "crash", ARGV[2])
    counted = counted + 1
  end
end
return counted
