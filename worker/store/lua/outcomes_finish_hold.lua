-- The outcomes finish_hold.lua appends (wrapped by worker/store/outcomes.py after outcomes.lua):
-- sent → mailed; phoned → listed (a bounce at send time: bounced, then listed);
-- only when this claim changed the status (not "lost", "missing", or a hold closed meanwhile).
-- The part under "-- [before]" runs first; the part under "-- [after]" sees the script's
-- reply as `result`. Outcome names: HoldOutcome (worker/store/vocab.py).
-- Vocabulary: HoldStatus, HoldOutcome (the statuses it compares; a listing's reason compared with "bounced")
-- [before]
local before = redis.call("HGET", KEYS[1], "status")
-- [after]
if (before == "sending" or before == "retrying") and result == ARGV[1] then
  if result == "sent" then
    emit(KEYS[1], ARGV[3], "mailed", "", redis.call("HGET", KEYS[1], "message_id"))
  elseif result == "phoned" then
    local reason = redis.call("HGET", KEYS[1], "reason") or ""
    if reason == "bounced" then emit(KEYS[1], ARGV[3], "bounced", reason, "") end
    emit(KEYS[1], ARGV[3], "listed", reason, "")
  end
end
