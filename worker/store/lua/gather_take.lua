-- Close a digest window whose end has passed and take its holds for one mail: every
-- member still waiting in this window (not cancelled, picked up, listed or taken by
-- another digest) gets the digest's token and lease, so only this send can finish it.
-- KEYS[1] gather:{branch}:{card}  KEYS[2] inflight  KEYS[3] gather_taken:{digest token}
-- KEYS[4] gather_due  KEYS[5] patron:{card} (read, for the mail's address: one round trip)
-- ARGV[1] gather id  ARGV[2] digest token  ARGV[3] now_ms  ARGV[4] lease_ms
-- ARGV[5] the key prefix of a hold (`hold:{hold_id}` without the id): the members are read
-- from the window here and their keys built from it, so the take is one round trip (as
-- outcomes.lua builds the day's statistics key)
-- ARGV[6] the window's entry in gather_due ("{gather id} {branch} {card}"): removed by any
-- take of this id, which either takes the window now or finds it taken before
-- Returns the card's contact (HGETALL of KEYS[5]) followed by each hold taken as its id
-- and its fields (HGETALL, what the mail needs), or false when the window is no longer
-- this one (another worker took it).
-- Vocabulary: HoldStatus (the statuses it reads and writes)
local function answer(id, taken)
  taken[#taken + 1] = id
  taken[#taken + 1] = redis.call("HGETALL", ARGV[5] .. id)
end
redis.call("ZREM", KEYS[4], ARGV[6])
if redis.call("HGET", KEYS[1], "id") ~= ARGV[1] then
  -- this very take again (its first reply lost, the client retried: worker/store/connect.py)
  -- answers the holds its token took (KEYS[3], written by the first run), those still its own
  local again = {redis.call("HGETALL", KEYS[5])}
  for id in string.gmatch(redis.call("GET", KEYS[3]) or "", "[^,]+") do
    local hold = ARGV[5] .. id
    if redis.call("HGET", hold, "digest") == ARGV[2] and redis.call("HGET", hold, "token") == ARGV[2] then
      answer(id, again)
    end
  end
  if #again > 1 then
    return again
  end
  return false
end
local fields = redis.call("HKEYS", KEYS[1])
redis.call("DEL", KEYS[1])
local now = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local taken = {redis.call("HGETALL", KEYS[5])}
local ids = {}
for _, field in ipairs(fields) do
  if string.find(field, "h:", 1, true) == 1 then  -- a member (the others: id, due, opener)
    local id = string.sub(field, 3)
    local hold = ARGV[5] .. id
    local status = redis.call("HGET", hold, "status")
    if (status == "retrying" or status == "sending") and redis.call("HGET", hold, "gather") == ARGV[1] then
      redis.call("HSET", hold, "status", "sending", "token", ARGV[2], "lease_until", now + lease,
                 "digest", ARGV[2])
      redis.call("ZADD", KEYS[2], now + 2 * lease, id)
      ids[#ids + 1] = id
      answer(id, taken)
    end
  end
end
if #ids > 0 then
  redis.call("SET", KEYS[3], table.concat(ids, ","), "PX", lease)
end
return taken
