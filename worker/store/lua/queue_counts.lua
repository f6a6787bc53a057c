-- One consistent look at a queue: messages stored, ids queued, ids fetched-not-acked.
-- More stored than queued and fetched means an orphan (or, rarely, a new worker's ack
-- set missing from KEYS): the sweeper then looks id by id.
-- KEYS[1] <ns>:<queue>  KEYS[2] <ns>:<queue>.msgs  KEYS[3..] every <ns>:__acks__.*.<queue>
-- Vocabulary: none (no hold status or verdict; worker/store/vocab.py)
local fetched = 0
for i = 3, #KEYS do
  fetched = fetched + redis.call("SCARD", KEYS[i])
end
return {redis.call("HLEN", KEYS[2]), redis.call("LLEN", KEYS[1]), fetched}
