-- The digest windows whose end has come, for the process that asks to send them
-- (worker/queue/windows.py): up to ARGV[2] entries of gather_due scored at or before now.
-- Each is given to this caller for ARGV[3] ms (its score moved to now + that), so the
-- other processes polling leave it alone; its take removes it (gather_take.lua). A caller
-- that dies before taking it leaves it to be found again when that time is up.
-- KEYS[1] gather_due
-- ARGV[1] now_ms  ARGV[2] how many at most  ARGV[3] ms the entries are this caller's
-- Returns the end (ms) of the next window not yet due ("" if none), then the entries
-- ("{gather id} {branch} {card}"), oldest end first: the caller sleeps until that end.
-- Vocabulary: none (it reads no status)
local now = tonumber(ARGV[1])
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, tonumber(ARGV[2]))
for _, entry in ipairs(due) do
  redis.call("ZADD", KEYS[1], now + tonumber(ARGV[3]), entry)
end
local after = redis.call("ZRANGEBYSCORE", KEYS[1], "(" .. now, "+inf", "WITHSCORES", "LIMIT", 0, 1)
table.insert(due, 1, after[2] or "")
return due
