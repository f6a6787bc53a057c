-- A pickup reminder mail went out: record it on each hold taken with this token, drop
-- it from the schedule, and append the `reminded` outcome — in one step.
-- KEYS[1] reminders  KEYS[2] outcomes  KEYS[3..] hold:{hold_id}
-- ARGV[1] token  ARGV[2] now_ms  ARGV[3] message id  ARGV[4] maxlen  ARGV[5] at (ISO)
-- ARGV[6..] hold_id (as KEYS[3..]).  Returns how many were recorded.
-- Vocabulary: none (it reads no status)
-- the library's statistics (worker/stats/fields.py): stats:day:{Tokyo day of ARGV[5]}
-- under the stream's prefix, "{pickup branch}|reminded" per hold
local stats = (string.gsub(KEYS[2], "outcomes$", "")) .. "stats:day:" .. string.sub(ARGV[5], 1, 10)
local n = 0
for i = 3, #KEYS do
  local hold = KEYS[i]
  local id = ARGV[i + 3]
  if redis.call("HGET", hold, "reminding") == ARGV[1] and redis.call("HEXISTS", hold, "reminded_ms") == 0 then
    redis.call("HSET", hold, "reminded_ms", ARGV[2], "reminder_id", ARGV[3])
    redis.call("HDEL", hold, "reminding", "reminding_until")
    redis.call("ZREM", KEYS[1], id)
    redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[4], "*", "hold_id", id,
               "card_number", redis.call("HGET", hold, "card_number") or "", "outcome", "reminded",
               "reason", "", "message_id", ARGV[3], "at", ARGV[5])
    local branch = redis.call("HGET", hold, "pickup_branch")
    if not branch then branch = "unknown" end
    redis.call("HINCRBY", stats, branch .. "|reminded", 1)
    n = n + 1
  end
end
return n
