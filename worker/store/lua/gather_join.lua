-- A claimed e-mail hold joins the open digest window of its card at its pickup branch
-- (worker/app/digest.py), or opens one. The hold then waits as "retrying". A window
-- opened here is entered in `gather_due` (score: its end), which the worker's processes
-- poll (worker/queue/windows.py): whoever finds it due sends it. The sweeper re-sends the
-- members' events after `due` + two leases if the window was never sent (its take lost).
-- KEYS[1] hold:{hold_id}  KEYS[2] gather:{branch}:{card}  KEYS[3] inflight  KEYS[4] gather_due
-- ARGV[1] token of the claim  ARGV[2] hold_id  ARGV[3] now_ms  ARGV[4] window, ms
-- ARGV[5] lease_ms  ARGV[6] id for a new window  ARGV[7] the window key's lifetime, s
-- ARGV[8] "1" when the hold joins again after its digest failed (a 4xx): one attempt more,
-- as a claim counts it (the backoff grows; no claim comes between a digest's tries)
-- ARGV[9] "{branch} {card}": the window's entry in gather_due is "{gather_id} {branch} {card}"
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
  redis.call("HSET", KEYS[2], "id", gid, "due", due, "opener", ARGV[2])
  redis.call("EXPIRE", KEYS[2], ARGV[7])
  redis.call("ZADD", KEYS[4], due, gid .. " " .. ARGV[9])
end
redis.call("HSET", KEYS[2], "h:" .. ARGV[2], now)
-- retry_ms: a claim before the window's end (the ILS announcing the hold again) waits for
-- it, as for a retry's time (claim_hold.lua), rather than claim the hold a second time
redis.call("HSET", hold, "status", "retrying", "gather", gid, "retry_ms", due)
if tonumber(ARGV[8]) == 1 then
  redis.call("HINCRBY", hold, "attempts", 1)
end
redis.call("HDEL", hold, "lease_until")
redis.call("ZADD", KEYS[3], due + 2 * tonumber(ARGV[5]), ARGV[2])
return {"wait", tostring(due - now), gid}
