-- Record how a claimed hold ended: sent, phoned (onto the call list) or retrying.
-- KEYS[1] hold:{hold_id}  KEYS[2] calls  KEYS[3] calls:due  KEYS[4] sent:{card}
-- KEYS[5] patron:{card} (its last successful delivery is recorded there)  KEYS[6] inflight
-- ARGV[5] is the call list's due score when phoned, the sweeper's next look (ms) when retrying
-- ARGV[1] outcome  ARGV[2] token  ARGV[3] hold_id  ARGV[4] call entry JSON ("" unless phoned)
-- ARGV[5] due score  ARGV[6..] field/value pairs to store on the hold
-- Applies to a hold we own (sending) or one waiting for a retry (a give-up).
-- Returns the hold's status afterwards. A hold cancelled or picked up while we
-- were sending keeps that status and never reaches the call list.
local hold = KEYS[1]
local outcome = ARGV[1]
local status = redis.call("HGET", hold, "status")
for i = 6, #ARGV, 2 do
  redis.call("HSET", hold, ARGV[i], ARGV[i + 1])
end
if (status ~= "sending" and status ~= "retrying") or redis.call("HGET", hold, "token") ~= ARGV[2] then
  if status ~= "sending" and status ~= "retrying" then
    redis.call("ZREM", KEYS[6], ARGV[3])
  end
  return status or "missing"
end
redis.call("HSET", hold, "status", outcome)
redis.call("HDEL", hold, "lease_until")
if outcome == "retrying" then
  redis.call("ZADD", KEYS[6], ARGV[5], ARGV[3])
else
  redis.call("ZREM", KEYS[6], ARGV[3])
end
if outcome == "sent" then
  -- the card's recent notices: a bounce without our Message-ID is traced through them
  redis.call("LPUSH", KEYS[4], ARGV[3])
  redis.call("LTRIM", KEYS[4], 0, 19)
  redis.call("HSET", KEYS[5], "last_sent_hold", ARGV[3], "last_sent_ms", redis.call("HGET", hold, "sent_ms") or "")
elseif outcome == "phoned" then
  redis.call("HSET", KEYS[2], ARGV[3], ARGV[4])
  redis.call("ZADD", KEYS[3], ARGV[5], ARGV[3])
end
return outcome
