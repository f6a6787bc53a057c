-- Close a digest window whose end has passed and take its holds for one mail: every
-- member still waiting in this window (not cancelled, picked up, listed or taken by
-- another digest) gets the digest's token and lease, so only this send can finish it.
-- KEYS[1] gather:{branch}:{card}  KEYS[2] inflight  KEYS[3..] hold:{hold_id} of each member
-- ARGV[1] gather id  ARGV[2] digest token  ARGV[3] now_ms  ARGV[4] lease_ms
-- ARGV[5..] hold_id of each member (as KEYS[3..])
-- Returns the hold ids taken (in the order given), or false when the window is no
-- longer this one (another worker took it).
-- Vocabulary: HoldStatus (the statuses it reads and writes)
if redis.call("HGET", KEYS[1], "id") ~= ARGV[1] then
  -- this very take again (its first reply lost, the client retried: worker/store/connect.py)
  -- finds its holds by its digest token, fresh for every take: the same answer
  local again = {}
  for i = 3, #KEYS do
    if redis.call("HGET", KEYS[i], "digest") == ARGV[2]
        and redis.call("HGET", KEYS[i], "token") == ARGV[2] then
      again[#again + 1] = ARGV[i + 2]
    end
  end
  if #again > 0 then
    return again
  end
  return false
end
redis.call("DEL", KEYS[1])
local now = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local taken = {}
for i = 3, #KEYS do
  local hold = KEYS[i]
  local status = redis.call("HGET", hold, "status")
  if (status == "retrying" or status == "sending") and redis.call("HGET", hold, "gather") == ARGV[1] then
    local id = ARGV[i + 2]
    redis.call("HSET", hold, "status", "sending", "token", ARGV[2], "lease_until", now + lease,
               "digest", ARGV[2])
    redis.call("ZADD", KEYS[2], now + 2 * lease, id)
    taken[#taken + 1] = id
  end
end
return taken
