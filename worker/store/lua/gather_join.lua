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
-- (the join itself is gather_into.lua's, shared with claim_hold.lua's join at the claim)
local hold = KEYS[1]
local now = tonumber(ARGV[3])
-- include: gather_into
if redis.call("HGET", hold, "token") ~= ARGV[1] then
  return {"lost"}
end
if redis.call("HGET", hold, "status") ~= "sending" then
  -- this very join again (its first reply lost, the client retried: worker/store/connect.py):
  -- the hold waits in the window already, the same answer
  return waiting_in(hold, KEYS[2], ARGV[2], now) or {"lost"}
end
return gather_into(hold, KEYS[2], KEYS[3], KEYS[4], ARGV[2], now, tonumber(ARGV[4]),
                   tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9])
