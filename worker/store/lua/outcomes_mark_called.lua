-- The outcomes mark_called.lua appends (wrapped by worker/store/outcomes.py after outcomes.lua):
-- staff marked the call done.
-- The part under "-- [before]" runs first; the part under "-- [after]" sees the script's
-- reply as `result` (the entry JSON when it changed the hold; false or a table when not). Outcome names: HoldOutcome (worker/store/vocab.py).
-- Vocabulary: none (it compares no status)
-- [before]

-- [after]
if type(result) == type("") then
  emit(KEYS[3], ARGV[1], "called", "", "")
  -- statistics; the day's key is noted on the hold so an undo takes back this very count
  tally(KEYS[3], "called")
  redis.call("HSET", KEYS[3], "called_stats", STATS)
end
