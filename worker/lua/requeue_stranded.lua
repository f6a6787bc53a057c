-- Put a message that a live worker fetched but lost (it is in that worker's ack set
-- for far longer than any notice takes) back on its queue. SREM makes it happen once
-- even when several sweepers see it.
-- KEYS[1] <ns>:__acks__.<worker>.<queue>  KEYS[2] <ns>:<queue>  KEYS[3] <ns>:<queue>.msgs
-- ARGV[1] message id.  Returns 1 if re-queued.
if redis.call("SREM", KEYS[1], ARGV[1]) == 1 and redis.call("HEXISTS", KEYS[3], ARGV[1]) == 1 then
  redis.call("RPUSH", KEYS[2], ARGV[1])
  return 1
end
return 0
