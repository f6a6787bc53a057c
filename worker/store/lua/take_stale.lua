-- Holds whose sending lease or retry is long overdue (the sweeper re-enqueues them).
-- Each taken hold is pushed ARGV[3] ms into the future, so one sweeper takes it at a time.
-- KEYS[1] inflight  ARGV[1] now_ms  ARGV[2] limit  ARGV[3] push_ms
-- Vocabulary: none (no hold status or verdict; worker/store/vocab.py)
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call("ZADD", KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), id)
end
return ids
