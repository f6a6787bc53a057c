-- Take mailed holds for one pickup reminder mail: each hold still "sent", not closed
-- (cancelled, picked up) and never reminded gets `reminding` = this pass's token; the
-- others are dropped from the schedule. A reminder is never sent twice for a hold.
-- KEYS[1] reminders  KEYS[2..] hold:{hold_id}
-- ARGV[1] token  ARGV[2] now_ms  ARGV[3] how long a take holds (ms)  ARGV[4..] hold_id (as KEYS[2..])
-- Returns the hold ids taken.
-- Vocabulary: HoldStatus (the status it reads)
local taken = {}
local now = tonumber(ARGV[2])
for i = 2, #KEYS do
  local hold = KEYS[i]
  local id = ARGV[i + 2]
  local busy = tonumber(redis.call("HGET", hold, "reminding_until") or "0")
  if redis.call("HGET", hold, "status") ~= "sent" or redis.call("HEXISTS", hold, "closed") == 1
      or redis.call("HEXISTS", hold, "reminded_ms") == 1 then
    redis.call("ZREM", KEYS[1], id)
  elseif busy <= now or redis.call("HGET", hold, "reminding") == ARGV[1] then
    -- (this pass's own token: the same take sent again after its reply was lost, by the
    -- client's retry through a failover, worker/store/connect.py; the same answer)
    redis.call("HSET", hold, "reminding", ARGV[1], "reminding_until", now + tonumber(ARGV[3]))
    taken[#taken + 1] = id
  end
end
return taken
