-- The outcomes uncall.lua appends (wrapped by worker/store/outcomes.py after outcomes.lua):
-- a misclick undone: the hold is back on the list for the reason it had.
-- The part under "-- [before]" runs first; the part under "-- [after]" sees the script's
-- reply as `result` (the entry JSON when it changed the hold; false or a table when not). Outcome names: HoldOutcome (worker/store/vocab.py).
-- Vocabulary: none (it compares no status)
-- [before]
local counted = redis.call("HGET", KEYS[3], "called_stats")
-- [after]
if type(result) == type("") then
  emit(KEYS[3], ARGV[1], "listed", redis.call("HGET", KEYS[3], "reason") or "", "")
  -- statistics: not listed anew; the call counted by mark_called is taken back (that day's)
  if counted then
    tally(KEYS[3], "called", -1, counted)
    redis.call("HDEL", KEYS[3], "called_stats")
  end
end
