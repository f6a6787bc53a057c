-- Staff phoned the patron about a hold on the call list.
-- KEYS[1] calls  KEYS[2] calls:due  KEYS[3] hold:{hold_id}  KEYS[4] called
-- ARGV[1] hold_id  ARGV[2] record JSON (appended to `called`)  ARGV[3] now_ms
-- ARGV[4] JSON array of call-entry fields dropped from the copy kept for undo (title…)
-- ARGV[5..] hold fields dropped: the patron was told (worker/holds/retention.py)
-- Returns the call-list entry JSON, or false when the hold is not on the list.
-- The entry, its due score and the status before are kept on the hold, so that
-- uncall.lua can put it back exactly as it was (a misclick).
-- Vocabulary: HoldStatus (worker/store/vocab.py)
local entry = redis.call("HGET", KEYS[1], ARGV[1])
if not entry then
  return false
end
local due = redis.call("ZSCORE", KEYS[2], ARGV[1]) or "0"
local before = redis.call("HGET", KEYS[3], "status") or "phoned"
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
local kept = entry
if ARGV[4] and #ARGV[4] > 0 then
  local ok, e = pcall(cjson.decode, entry)
  if ok and type(e) == type({}) then
    for _, f in ipairs(cjson.decode(ARGV[4])) do e[f] = nil end
    kept = cjson.encode(e)
  end
end
if #ARGV >= 5 then
  redis.call("HDEL", KEYS[3], unpack(ARGV, 5))
end
redis.call("HSET", KEYS[3], "status", "called", "called_ms", ARGV[3],
           "called_entry", kept, "called_due", due, "called_from", before)
redis.call("RPUSH", KEYS[4], ARGV[2])
return entry
