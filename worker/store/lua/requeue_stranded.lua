-- Put a message that a live worker fetched but lost (it is in that worker's ack set
-- for far longer than any notice takes) back on its queue. SREM makes it happen once
-- even when several sweepers see it at the same moment; the marker KEYS[4] makes it
-- happen once per ARGV[2] ms, so a sweeper whose view predates another's re-queue (the
-- message fetched again meanwhile, into the same ack set) does not push it a second time.
-- KEYS[1] <ns>:__acks__.<worker>.<queue>  KEYS[2] <ns>:<queue>  KEYS[3] <ns>:<queue>.msgs
-- KEYS[4] <ns>:__swept__.<queue>.<id>
-- ARGV[1] message id  ARGV[2] marker lifetime, ms.  Returns 1 if re-queued.
-- Vocabulary: none (no hold status or verdict; worker/store/vocab.py)
if redis.call("EXISTS", KEYS[4]) == 1 then
  return 0
end
if redis.call("SREM", KEYS[1], ARGV[1]) == 1 and redis.call("HEXISTS", KEYS[3], ARGV[1]) == 1 then
  redis.call("RPUSH", KEYS[2], ARGV[1])
  redis.call("SET", KEYS[4], "1", "PX", ARGV[2])
  return 1
end
return 0
