-- dramatiq's "fetch" (dramatiq/brokers/redis/dispatch.lua), but each message comes back
-- with the id it is stored under: the worker acknowledges by that id, never by what the
-- payload claims in options.redis_message_id (a producer may leave it out or get it wrong).
-- It first acknowledges the messages this worker finished since its last fetch (dramatiq's
-- "ack", one round trip a message, folded in here: worker/queue/fetch.py, AckOnFetch).
-- KEYS[1] <ns>:__heartbeats__  KEYS[2] <ns>:<queue>  KEYS[3] <ns>:<queue>.msgs
-- KEYS[4] <ns>:__acks__.<worker>.<queue>
-- ARGV[1] now_ms  ARGV[2] worker id  ARGV[3] how many  ARGV[4..] ids to acknowledge
-- Returns id1, data1, id2, data2, ... (data false when the id has no message, as dramatiq).
-- Vocabulary: none (no hold status or verdict; worker/store/vocab.py)
redis.call("ZADD", KEYS[1], ARGV[1], ARGV[2])
for i = 4, #ARGV do
  if redis.call("SREM", KEYS[4], ARGV[i]) > 0 then
    redis.call("HDEL", KEYS[3], ARGV[i])
  end
end
local out = {}
for _ = 1, tonumber(ARGV[3]) do
  local id = redis.call("LPOP", KEYS[2])
  if not id then break end
  redis.call("SADD", KEYS[4], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call("HGET", KEYS[3], id)
end
return out
