-- Lengthen the sending lease of a claim that is about to hand its message to the relay
-- (the relay's reply may take longer than the lease has left; see worker/app/holds.py).
-- KEYS[1] hold:{hold_id}  KEYS[2] inflight
-- ARGV[1] token of the claim  ARGV[2] the lease's new end (ms)  ARGV[3] hold_id
-- ARGV[4] the sweeper's next look (ms)
-- Returns 1, or 0 when the claim is no longer the hold's (taken over, or finished).
-- Vocabulary: HoldStatus (worker/store/vocab.py)
local hold = KEYS[1]
if redis.call("HGET", hold, "status") ~= "sending" or redis.call("HGET", hold, "token") ~= ARGV[1] then
  return 0
end
local until_ms = tonumber(ARGV[2])
if until_ms > tonumber(redis.call("HGET", hold, "lease_until") or "0") then
  redis.call("HSET", hold, "lease_until", until_ms)
end
redis.call("ZADD", KEYS[2], "GT", ARGV[4], ARGV[3])
return 1
