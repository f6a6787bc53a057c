-- Remove a list's entries older than a cutoff, oldest first (from the head): the list is
-- append-only in time order, so the old ones are a prefix; newer ones are never rewritten.
-- KEYS[1] the list (JSON entries with "at", ISO 8601 in Tokyo time, as the store writes it)
-- KEYS[2] (optional) a set that loses each removed entry's "fingerprint" too (bounces:seen)
-- ARGV[1] cutoff, in the same form: entries whose "at" sorts before it go
-- ARGV[2] 1 to remove, 0 to count only (a dry run)  ARGV[3] look at most this many entries
-- Returns how many were (or would be) removed; stops at the first entry not older than
-- the cutoff or without a readable time. Two purges at once: each removes what is old
-- when it runs, so nothing is removed twice.
-- Vocabulary: none (it writes and answers no status)
local batch = redis.call("LRANGE", KEYS[1], 0, tonumber(ARGV[3]) - 1)
local n = 0
local prints = {}
for _, raw in ipairs(batch) do
  local ok, e = pcall(cjson.decode, raw)
  if not ok or type(e) ~= type({}) or type(e.at) ~= type("") or e.at >= ARGV[1] then
    break
  end
  n = n + 1
  if type(e.fingerprint) == type("") then
    prints[#prints + 1] = e.fingerprint
  end
end
if n > 0 and tonumber(ARGV[2]) == 1 then
  redis.call("LTRIM", KEYS[1], n, -1)
  if KEYS[2] and #prints > 0 then
    redis.call("SREM", KEYS[2], unpack(prints))
  end
end
return n
