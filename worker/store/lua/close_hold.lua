-- A hold was cancelled or picked up: drop any notice not yet sent, leave the call list.
-- KEYS[1] hold:{hold_id}  KEYS[2] calls  KEYS[3] calls:due  KEYS[4] inflight
-- ARGV[1] new status (cancelled|picked_up)  ARGV[2] hold_id  ARGV[3] now_ms  ARGV[4] ttl_s
-- ARGV[5..] fields dropped now the service is over: title, name (worker/holds/retention.py)
-- Returns the status the hold had before ("none" if we never saw it).
-- Vocabulary: HoldStatus, ClaimVerdict (worker/store/vocab.py)
local hold = KEYS[1]
local before = redis.call("HGET", hold, "status") or "none"
redis.call("HDEL", KEYS[2], ARGV[2])
redis.call("ZREM", KEYS[3], ARGV[2])
redis.call("ZREM", KEYS[4], ARGV[2])
if before == "sent" or before == "called" then
  -- the patron was already told; keep that fact and note the closing
  redis.call("HSET", hold, "closed", ARGV[1], "closed_ms", ARGV[3])
else
  redis.call("HSET", hold, "status", ARGV[1], "closed_ms", ARGV[3])
end
if #ARGV >= 5 then
  redis.call("HDEL", hold, unpack(ARGV, 5))
end
if before == "none" then
  -- a tombstone, so a late or duplicate hold_ready is dropped
  redis.call("EXPIRE", hold, ARGV[4])
end
return before
