-- A claimed e-mail hold joins the open digest window of its card at its pickup branch
-- (worker/app/digest.py), or opens one. The hold then waits as "retrying" (its message
-- comes back at the window's end; the sweeper looks after `due` + two leases if not).
-- KEYS[1] hold:{hold_id}  KEYS[2] gather:{branch}:{card}  KEYS[3] inflight
-- ARGV[1] token of the claim  ARGV[2] hold_id  ARGV[3] now_ms  ARGV[4] window, ms
-- ARGV[5] lease_ms  ARGV[6] id for a new window  ARGV[7] the window key's lifetime, s
-- Returns {"wait", ms_left, gather_id} | {"due", gather_id} (a window whose end has
-- passed and nobody has taken yet: the caller takes it, then joins again) | {"lost"}
-- (another claim owns the hold now).
-- Vocabulary: GatherVerdict, HoldStatus (what it answers; the statuses it reads and writes)
local hold = KEYS[1]
local now = tonumber(ARGV[3])
if redis.call("HGET", hold, "token") ~= ARGV[1] then
  return {"lost"}
end
if redis.call("HGET", hold, "status") ~= "sending" then
  -- this very join again (its first reply lost, the client retried: worker/store/connect.py):
  -- the hold waits in the window already, the same answer
  local joined = redis.call("HGET", hold, "gather")
  if redis.call("HGET", hold, "status") == "retrying" and joined
      and joined == redis.call("HGET", KEYS[2], "id")
      and redis.call("HEXISTS", KEYS[2], "h:" .. ARGV[2]) == 1 then
    local due = tonumber(redis.call("HGET", KEYS[2], "due"))
    if now >= due then
      return {"due", joined}
    end
    return {"wait", tostring(due - now), joined}
  end
  return {"lost"}
end
local gid = redis.call("HGET", KEYS[2], "id")
local due
if gid then
  due = tonumber(redis.call("HGET", KEYS[2], "due"))
  if now >= due then
    return {"due", gid}
  end
else
  gid = ARGV[6]
  due = now + tonumber(ARGV[4])
  redis.call("HSET", KEYS[2], "id", gid, "due", due)
  redis.call("EXPIRE", KEYS[2], ARGV[7])
end
redis.call("HSET", KEYS[2], "h:" .. ARGV[2], now)
redis.call("HSET", hold, "status", "retrying", "gather", gid)
redis.call("HDEL", hold, "lease_until")
redis.call("ZADD", KEYS[3], due + 2 * tonumber(ARGV[5]), ARGV[2])
return {"wait", tostring(due - now), gid}
