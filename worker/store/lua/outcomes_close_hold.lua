-- The outcomes close_hold.lua appends (wrapped by worker/store/outcomes.py after outcomes.lua):
-- cancelled / picked_up, once: a repeated event is not a new outcome.
-- The part under "-- [before]" runs first; the part under "-- [after]" sees the script's
-- reply as `result`. Outcome names: HoldOutcome (worker/store/vocab.py).
-- Vocabulary: HoldStatus (the statuses it compares)
-- [before]
local before = redis.call("HGET", KEYS[1], "status")
local closed = redis.call("HGET", KEYS[1], "closed")
-- [after]
if before ~= ARGV[1] and closed ~= ARGV[1] then
  emit(KEYS[1], ARGV[2], ARGV[1], "", "")
end
