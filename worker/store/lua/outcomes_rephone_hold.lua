-- The outcomes rephone_hold.lua appends (wrapped by worker/store/outcomes.py after outcomes.lua):
-- a sent notice bounced later: bounced (naming the mail), then listed.
-- The part under "-- [before]" runs first; the part under "-- [after]" sees the script's
-- reply as `result`. Outcome names: HoldOutcome (worker/store/vocab.py).
-- Vocabulary: HoldStatus (the statuses it compares)
-- [before]
local before = redis.call("HGET", KEYS[1], "status")
-- [after]
if before == "sent" and result == "phoned" then
  emit(KEYS[1], ARGV[1], "bounced", ARGV[4], redis.call("HGET", KEYS[1], "message_id"))
  emit(KEYS[1], ARGV[1], "listed", ARGV[4], "")
  -- statistics: the bounce's reason (ARGV[5]) and the carrier the notice went to
  local why = ARGV[5]
  if not why or #why == 0 then why = "undefined" end
  tally(KEYS[1], "bounced." .. why .. "." .. carrier(KEYS[1]))
  tally(KEYS[1], "listed." .. ARGV[4])
end
