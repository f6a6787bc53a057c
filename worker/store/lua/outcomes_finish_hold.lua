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
    -- statistics: a hold mailed alone or with others (digest_holds names several)
    local how = "single"
    if string.find(redis.call("HGET", KEYS[1], "digest_holds") or "", ",", 1, true) then how = "digest" end
    tally(KEYS[1], "mailed." .. how .. "." .. carrier(KEYS[1]))
  elseif result == "phoned" then
    local reason = redis.call("HGET", KEYS[1], "reason") or ""
    if reason == "bounced" then
      emit(KEYS[1], ARGV[3], "bounced", reason, "")
      -- statistics: the bounce's reason and carrier, and a refusal at send time
      local why = redis.call("HGET", KEYS[1], "bounce_reason")
      if not why then why = "undefined" end
      tally(KEYS[1], "bounced." .. why .. "." .. carrier(KEYS[1]))
      tally(KEYS[1], "sendfail." .. carrier(KEYS[1]))
    end
    emit(KEYS[1], ARGV[3], "listed", reason, "")
    tally(KEYS[1], "listed." .. reason)  -- statistics
  end
end
