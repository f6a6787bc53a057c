-- Undo "called": put a hold staff marked as phoned back on the call list, as it was;
-- the patron's audit line with it (one step, as in mark_called.lua).
-- KEYS[1] calls  KEYS[2] calls:due  KEYS[3] hold:{hold_id}  KEYS[4] called
-- KEYS[5] audit:{card} (the card the caller read from the kept entry)
-- ARGV[1] hold_id  ARGV[2] record JSON (appended to `called`)
-- ARGV[3] card  ARGV[4] audit entry JSON (its branch is taken from the entry; "" = none)
-- Returns the call-list entry JSON, or false when the hold is not marked called (never
-- was, already undone) or was cancelled or picked up since (close_hold.lua sets `closed`);
-- {"other_card", card} when the entry names another card than ARGV[3] (nothing written).
-- Vocabulary: HoldStatus, CallVerdict (worker/store/vocab.py)
-- include: call_entry_audit
local hold = KEYS[3]
if redis.call("HGET", hold, "status") ~= "called" or redis.call("HEXISTS", hold, "closed") == 1 then
  return false
end
local entry = redis.call("HGET", hold, "called_entry")
if not entry then
  return false
end
local _, card, audit = entry_audit(entry, ARGV[3], ARGV[4])
if card ~= ARGV[3] then
  return {"other_card", card}
end
redis.call("HSET", KEYS[1], ARGV[1], entry)
redis.call("ZADD", KEYS[2], redis.call("HGET", hold, "called_due") or "0", ARGV[1])
redis.call("HSET", hold, "status", redis.call("HGET", hold, "called_from") or "phoned")
redis.call("HDEL", hold, "called_ms", "called_entry", "called_due", "called_from")
redis.call("RPUSH", KEYS[4], ARGV[2])
if audit then
  redis.call("RPUSH", KEYS[5], audit)
end
return entry
