-- A notice that was sent bounced later: put its hold on the call list instead,
-- unless the hold was picked up or cancelled meanwhile (or is already listed).
-- KEYS[1] hold:{hold_id}  KEYS[2] calls  KEYS[3] calls:due
-- ARGV[1] hold_id  ARGV[2] call entry JSON  ARGV[3] due score  ARGV[4] reason
-- ARGV[5] the bounce's reason (for the statistics: read by the outcome wrapper)
-- Returns "phoned", or the status that stopped it.
-- Vocabulary: HoldStatus, ClaimVerdict (worker/store/vocab.py)
local hold = KEYS[1]
local status = redis.call("HGET", hold, "status")
if status ~= "sent" then
  return status or "missing"
end
if redis.call("HGET", hold, "closed") then
  return redis.call("HGET", hold, "closed")
end
redis.call("HSET", hold, "status", "phoned", "reason", ARGV[4])
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
return "phoned"
