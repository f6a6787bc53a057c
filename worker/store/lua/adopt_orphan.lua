-- Queue a message that is stored but was never queued (a producer stopped between HSET
-- and RPUSH): only if it is still stored, on no queue, in no ack set, and no sweeper
-- re-queued it lately (the same marker as requeue_stranded.lua).
-- KEYS[1] <ns>:<queue>  KEYS[2] <ns>:<queue>.msgs  KEYS[3] <ns>:__swept__.<queue>.<id>
-- KEYS[4..] every <ns>:__acks__.*.<queue>
-- ARGV[1] message id  ARGV[2] marker lifetime, ms.  Returns 1 if queued.
-- Vocabulary: none (no hold status or verdict; worker/store/vocab.py)
if redis.call("HEXISTS", KEYS[2], ARGV[1]) == 0 or redis.call("EXISTS", KEYS[3]) == 1 then
  return 0
end
if redis.call("LPOS", KEYS[1], ARGV[1]) then
  return 0
end
for i = 4, #KEYS do
  if redis.call("SISMEMBER", KEYS[i], ARGV[1]) == 1 then
    return 0
  end
end
redis.call("RPUSH", KEYS[1], ARGV[1])
redis.call("SET", KEYS[3], "1", "PX", ARGV[2])
return 1
