-- Staff phoned the patron about a hold on the call list; the patron's audit line with it.
-- KEYS[1] calls  KEYS[2] calls:due  KEYS[3] hold:{hold_id}  KEYS[4] called
-- KEYS[5] audit:{card} (the card the caller read from the entry)
-- ARGV[1] hold_id  ARGV[2] record JSON (appended to `called`)  ARGV[3] now_ms
-- ARGV[4] JSON array of call-entry fields dropped from the copy kept for undo (title…)
-- ARGV[5] card  ARGV[6] audit entry JSON (its branch is taken from the entry; "" = none)
-- ARGV[7..] hold fields dropped: the patron was told (worker/holds/retention.py)
-- Returns the call-list entry JSON; false when the hold is not on the list;
-- {"other_card", card} when the entry names another card than ARGV[5] (nothing written).
-- The entry, its due score and the status before are kept on the hold, so that
-- uncall.lua can put it back exactly as it was (a misclick). The mark and its audit line
-- are one step: a process killed in between cannot leave one without the other.
-- Vocabulary: HoldStatus, CallVerdict (worker/store/vocab.py)
-- include: call_entry_audit
local entry = redis.call("HGET", KEYS[1], ARGV[1])
if not entry then
  return false
end
local e, card, audit = entry_audit(entry, ARGV[5], ARGV[6])
if card ~= ARGV[5] then
  return {"other_card", card}
end
local due = redis.call("ZSCORE", KEYS[2], ARGV[1]) or "0"
local before = redis.call("HGET", KEYS[3], "status") or "phoned"
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
local kept = entry
if ARGV[4] and #ARGV[4] > 0 and next(e) ~= nil then
  for _, f in ipairs(cjson.decode(ARGV[4])) do e[f] = nil end
  kept = cjson.encode(e)
end
if #ARGV >= 7 then
  redis.call("HDEL", KEYS[3], unpack(ARGV, 7))
end
redis.call("HSET", KEYS[3], "status", "called", "called_ms", ARGV[3],
           "called_entry", kept, "called_due", due, "called_from", before)
redis.call("RPUSH", KEYS[4], ARGV[2])
if audit then
  redis.call("RPUSH", KEYS[5], audit)
end
return entry
