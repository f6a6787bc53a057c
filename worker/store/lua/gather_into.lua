-- Included by gather_join.lua and claim_hold.lua (`-- include: gather_into`): a hold its
-- caller owns (its token just checked or just set) joins the open digest window of its
-- card at its branch, or opens one and enters it in gather_due (worker/queue/windows.py).
-- gather_into(hold key, window key, inflight key, gather_due key, hold_id, now_ms,
--   window_ms, lease_ms, id for a new window, the window key's lifetime (s), again (1: the
--   hold joins after its digest failed, one attempt more), "{branch} {card}")
-- returns {"wait", ms_left, gather_id} | {"due", gather_id} (the window's end has passed and
-- nobody took it yet: the caller sends it, then joins again; nothing was written).
-- waiting_in(hold key, window key, hold_id, now_ms): the same answer for a hold that
-- joined already (a call repeated after its reply was lost), or nil.
-- Vocabulary: GatherVerdict, HoldStatus (what it answers; the status it writes)
local function gather_into(hold, gkey, inflight, due_key, hold_id, now, window, lease, new_id,
                           ttl, again, where)
  local gid = redis.call("HGET", gkey, "id")
  local due
  if gid then
    due = tonumber(redis.call("HGET", gkey, "due"))
    if now >= due then
      return {"due", gid}
    end
  else
    gid = new_id
    due = now + window
    redis.call("HSET", gkey, "id", gid, "due", due, "opener", hold_id)
    redis.call("EXPIRE", gkey, ttl)
    redis.call("ZADD", due_key, due, gid .. " " .. where)
  end
  redis.call("HSET", gkey, "h:" .. hold_id, now)
  -- retry_ms: a claim before the window's end (the ILS announcing the hold again) waits
  -- for it, as for a retry's time (claim_hold.lua), rather than claim the hold again
  redis.call("HSET", hold, "status", "retrying", "gather", gid, "retry_ms", due)
  if again == 1 then
    redis.call("HINCRBY", hold, "attempts", 1)
  end
  redis.call("HDEL", hold, "lease_until")
  redis.call("ZADD", inflight, due + 2 * lease, hold_id)
  return {"wait", tostring(due - now), gid}
end
local function waiting_in(hold, gkey, hold_id, now)
  local joined = redis.call("HGET", hold, "gather")
  if redis.call("HGET", hold, "status") == "retrying" and joined
      and joined == redis.call("HGET", gkey, "id")
      and redis.call("HEXISTS", gkey, "h:" .. hold_id) == 1 then
    local due = tonumber(redis.call("HGET", gkey, "due"))
    if now >= due then
      return {"due", joined}
    end
    return {"wait", tostring(due - now), joined}
  end
  return nil
end
