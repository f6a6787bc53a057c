-- Record how a claimed hold ended: sent, phoned (onto the call list) or retrying.
-- KEYS[1] hold:{hold_id}  KEYS[2] calls  KEYS[3] calls:due  KEYS[4] sent:{card}
-- KEYS[5] patron:{card} (its last successful delivery is recorded there)  KEYS[6] inflight
-- ARGV[1] outcome  ARGV[2] token of the claim  ARGV[3] hold_id
-- ARGV[4] call entry JSON ("" unless phoned)
-- ARGV[5] the call list's due score when phoned, the sweeper's next look (ms) when retrying
-- ARGV[6..] field/value pairs to store on the hold
-- Only the current claim may write: a token that is not the hold's last one (another
-- worker took the expired lease over) changes nothing and gets "lost".
-- Returns the hold's status afterwards ("missing" if it expired). A hold cancelled or
-- picked up while we were sending keeps that status and never reaches the call list.
-- Vocabulary: HoldStatus, ClaimVerdict (worker/store/vocab.py)
local hold = KEYS[1]
local outcome = ARGV[1]
local status = redis.call("HGET", hold, "status")
if not status then
  return "missing"
end
if redis.call("HGET", hold, "token") ~= ARGV[2] then
  return "lost"
end
for i = 6, #ARGV, 2 do
  redis.call("HSET", hold, ARGV[i], ARGV[i + 1])
end
if status ~= "sending" and status ~= "retrying" then
  redis.call("ZREM", KEYS[6], ARGV[3])
  return status
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
