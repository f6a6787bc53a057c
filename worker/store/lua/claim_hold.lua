-- Claim the right to send the ready notice of one hold (idempotency by hold_id).
-- KEYS[1] hold:{hold_id}   KEYS[2] notice:{notice} (used only when the hold is new)
-- KEYS[3] inflight (the sweeper looks at the hold again after two leases)
-- KEYS[4] (optional) patron:{card}: a claim also reads the patron's contact hash, in the
--         same call (one round trip per notice less; the read changes nothing)
-- KEYS[5] (optional, with KEYS[4]) gather:{branch}:{card}  KEYS[6] gather_due: a claimed hold
--         also joins its digest window, in the same call (below)
-- ARGV[1] now_ms  ARGV[2] lease_ms  ARGV[3] token (fresh for every claim)  ARGV[4] hold_id
-- ARGV[5] ttl_s  ARGV[6] notice (the hold's notice token, derived from its id)
-- ARGV[7] the join with KEYS[5]: "{window_ms} {new window id} {window key's lifetime, s}
--         {state} {branch} {card}", or "": joined only if the contact's state (KEYS[4]) is
--         {state}, the one that may be mailed
-- ARGV[8..] field/value pairs stored on first claim, the first pair being
-- the event ("event", its JSON), then card_number, pickup_branch, …
-- Returns {"claimed", token, attempts, first_ms, notice, first_event, contact, joined}
-- | {"done", status, first_event} | {"busy", ms_left} (a lease runs, or a retry is due later). `first_event` is "" unless the
-- hold was claimed before with an event other than the one given now: then it is that
-- first event, which decides (one hold, one event: worker/app/holds.py). `contact` is
-- the HGETALL of KEYS[4] (field, value, ...; empty without KEYS[4] or without a patron).
-- `joined` is gather_into's answer ({"wait", ms_left, gather_id} | {"due", gather_id}), or
-- {} when no join was asked, the contact's state may not be mailed, or the hold was first
-- claimed for another card or branch.
--
-- The join at the claim (issue 22: a round trip per digest hold less) is optimistic: the
-- caller asks for it when the event wants e-mail, and it is done only when the patron's
-- address is approved; the caller decides afterwards as always, and a hold it then lists
-- (its last day passed; the rule says otherwise) is finished under this claim's token like any (finish_hold.lua
-- takes a "retrying" hold), and its window's take passes it by. Only a hold whose stored
-- card and branch are the join's joins: those of the first event decide (one hold, one
-- event), so a hold is never put in another card's window.
--
-- Fencing: every claim stores its own token, and finish_hold.lua writes an outcome only
-- for the token stored last. A worker whose lease ran out and was taken over can no
-- longer record anything. `notice` names the notice (Message-ID, notice:{notice}); it is
-- stored by the first claim and stays the same through retries and takeovers. It is
-- derived from the hold id (worker/mail/compose.py notice_token), so a hold whose record
-- was lost (a failover) and is claimed anew gets the same one again.
-- Vocabulary: HoldStatus, ClaimVerdict (worker/store/vocab.py)
local hold = KEYS[1]
local now = tonumber(ARGV[1])

-- the event the hold was first claimed with, when it is not the one given now ("" if so)
local function first_event()
  local first = redis.call("HGET", hold, ARGV[8] or "")
  if first == ARGV[9] then
    first = false
  end
  return first or ""
end
-- the patron's contact hash (KEYS[4]), read for a claimed reply only
local function contact()
  if KEYS[4] then
    return redis.call("HGETALL", KEYS[4])
  end
  return {}
end
local lease = tonumber(ARGV[2])
-- include: gather_into
-- the claimed hold joins its window (KEYS[5]), when asked and its card and branch agree
local function joined()
  if not KEYS[6] or #ARGV[7] == 0 then
    return {}
  end
  -- the card last: a branch id (a settings key) may hold a space, a card number never
  local window, new_id, ttl, state, branch, card =
    string.match(ARGV[7], "^(%d+) (%S+) (%d+) (%S+) (.+) (%S+)$")
  if redis.call("HGET", KEYS[4], "state") ~= state  -- no approved address: a call, no window
      or redis.call("HGET", hold, "card_number") ~= card
      or redis.call("HGET", hold, "pickup_branch") ~= branch then
    return {}
  end
  return gather_into(hold, KEYS[5], KEYS[3], KEYS[6], ARGV[4], now, tonumber(window), lease,
                     new_id, ttl, 0, branch .. " " .. card)
end
local status = redis.call("HGET", hold, "status")

if status == "sending" then
  if redis.call("HGET", hold, "token") == ARGV[3] then
    -- this very claim again: its first reply was lost and the client retried (a Redis
    -- failover, worker/store/connect.py); the hold is this claim's, as first answered
    return {"claimed", ARGV[3], redis.call("HGET", hold, "attempts"),
            redis.call("HGET", hold, "first_ms"), redis.call("HGET", hold, "notice") or ARGV[6],
            first_event(), contact(), {}}
  end
  local until_ms = tonumber(redis.call("HGET", hold, "lease_until") or "0")
  if until_ms > now then
    return {"busy", tostring(until_ms - now)}
  end
elseif status == "retrying" then
  if KEYS[6] and redis.call("HGET", hold, "token") == ARGV[3] then
    -- this very claim again, whose first run joined the window: the same answer
    return {"claimed", ARGV[3], redis.call("HGET", hold, "attempts"),
            redis.call("HGET", hold, "first_ms"), redis.call("HGET", hold, "notice") or ARGV[6],
            first_event(), contact(), waiting_in(hold, KEYS[5], ARGV[4], now) or {}}
  end
  -- a retry is set for later (`retry_ms`, worker/app/hold_mail.py), or the hold waits in a
  -- digest window until its end (gather_join.lua): a second message for the hold (the ILS
  -- announcing it again, a redelivery) waits for that rather than try now; the retry's
  -- own message, or the window's take, comes at that moment (1 s: clocks of two hosts)
  local retry_ms = tonumber(redis.call("HGET", hold, "retry_ms") or "0")
  if retry_ms > now + 1000 then
    return {"busy", tostring(retry_ms - now)}
  end
elseif status then
  return {"done", status, first_event()}
end

if not status then
  redis.call("HSET", hold, "status", "sending", "lease_until", now + lease,
             "token", ARGV[3], "notice", ARGV[6], "attempts", 1, "first_ms", now)
  for i = 8, #ARGV, 2 do
    redis.call("HSET", hold, ARGV[i], ARGV[i + 1])
  end
  redis.call("SET", KEYS[2], ARGV[4], "EX", ARGV[5])
  redis.call("EXPIRE", hold, ARGV[5])
  redis.call("ZADD", KEYS[3], now + 2 * lease, ARGV[4])
  return {"claimed", ARGV[3], "1", tostring(now), ARGV[6], "", contact(), joined()}
end

-- a retry, or a lease left behind by a worker that died or is still busy mid-send:
-- the new claim gets the new token, so the old claimant's finish is refused
local notice = redis.call("HGET", hold, "notice")  -- a random one, if claimed before 2026-12
if not notice then  -- a hold claimed before claims had their own tokens
  notice = redis.call("HGET", hold, "token")
  redis.call("HSET", hold, "notice", notice)
end
redis.call("HSET", hold, "status", "sending", "lease_until", now + lease, "token", ARGV[3])
redis.call("HDEL", hold, "retry_ms")
redis.call("ZADD", KEYS[3], now + 2 * lease, ARGV[4])
local attempts = redis.call("HINCRBY", hold, "attempts", 1)
return {"claimed", ARGV[3], tostring(attempts), redis.call("HGET", hold, "first_ms"), notice,
        first_event(), contact(), joined()}
