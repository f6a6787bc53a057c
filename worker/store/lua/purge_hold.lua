-- The service of a hold is over (worker/holds/retention.py decided): drop its title and
-- the patron's name, and take it off the call list if its pickup window passed.
-- KEYS[1] hold:{hold_id}  KEYS[2] calls  KEYS[3] calls:due
-- ARGV[1] hold_id  ARGV[2] "expired" to mark a hold whose window passed (and unlist it),
-- or ""  ARGV[3] now_ms  ARGV[4..] fields to drop
-- Returns {fields dropped, call-list entries removed}: a second purge finds nothing left.
-- A hold the worker is sending or retrying right now is left alone.
-- Vocabulary: HoldStatus (worker/store/vocab.py)
local status = redis.call("HGET", KEYS[1], "status")
if status == "sending" or status == "retrying" then
  return {0, 0}
end
local listed = 0
if #ARGV[2] > 0 then
  listed = redis.call("HDEL", KEYS[2], ARGV[1])
  redis.call("ZREM", KEYS[3], ARGV[1])
  if status and not redis.call("HGET", KEYS[1], "closed") then
    redis.call("HSET", KEYS[1], "closed", ARGV[2], "closed_ms", ARGV[3])
  end
end
local dropped = 0
if status and #ARGV >= 4 then
  dropped = redis.call("HDEL", KEYS[1], unpack(ARGV, 4))
end
return {dropped, listed}
