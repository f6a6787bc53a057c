-- The outcome stream's step, put before every script wrapped by worker/store/outcomes.py
-- (with_outcomes): the wrapper's own KEYS and ARGV are taken off the end, so the wrapped
-- script sees exactly the KEYS and ARGV it declares.
-- KEYS[#KEYS] outcomes (the stream)  ARGV[#ARGV - 1] maxlen  ARGV[#ARGV] at (ISO 8601, +09:00)
-- emit() reads the card from the hold (claim_hold.lua stores card_number on it), so no
-- caller has to pass it; every entry has all six fields (empty when they do not apply).
-- Vocabulary: none (it writes what its callers pass)
local OUT_STREAM = table.remove(KEYS)
local OUT_AT = table.remove(ARGV)
local OUT_MAXLEN = table.remove(ARGV)
local function emit(hold_key, hold_id, outcome, reason, message_id)
  redis.call("XADD", OUT_STREAM, "MAXLEN", "~", OUT_MAXLEN, "*",
             "hold_id", hold_id, "card_number", redis.call("HGET", hold_key, "card_number") or "",
             "outcome", outcome, "reason", reason or "", "message_id", message_id or "",
             "at", OUT_AT)
end
-- The library's statistics (worker/stats/fields.py), counted in this same step:
-- stats:day:{Tokyo day of OUT_AT} under the stream's prefix (Keys.stats_day), one HINCRBY
-- of "{pickup branch}|{metric}" per count (no card, no address).
local STATS = (string.gsub(OUT_STREAM, "outcomes$", "")) .. "stats:day:" .. string.sub(OUT_AT, 1, 10)
local function tally(hold_key, metric, by, key)
  local branch = redis.call("HGET", hold_key, "pickup_branch")
  if not branch then branch = "unknown" end
  redis.call("HINCRBY", key or STATS, branch .. "|" .. metric, by or 1)
end
-- the carrier bucket the send path left on the hold (docomo, au, softbank, other)
local function carrier(hold_key)
  local c = redis.call("HGET", hold_key, "carrier")
  if not c then c = "other" end
  return c
end
