-- Included by mark_called.lua and uncall.lua (`-- include: call_entry_audit`): the card a
-- call-list entry names, and the audit line to append for it.
-- entry_audit(entry JSON, card the caller expects, audit JSON or "") returns
--   the decoded entry ({} when unreadable), the card it names ("" when none), and the
--   audit line with the entry's pickup branch (nil when audit JSON is "" or the card differs).
-- Decoding happens before the including script writes anything: a bad entry changes nothing.
-- Vocabulary: none (a helper; it writes nothing)
local function entry_audit(entry, card, audit_json)
  local ok, e = pcall(cjson.decode, entry)
  if not ok or type(e) ~= type({}) then
    e = {}
  end
  local named = e["card_number"]
  if type(named) ~= type("") then named = "" end
  if named ~= card or #audit_json == 0 then
    return e, named, nil
  end
  local audit = cjson.decode(audit_json)
  audit["branch"] = e["pickup_branch"]
  return e, named, cjson.encode(audit)
end
