--[[
  When a job ends or is removed, frees its deduplication id so that a new job
  with that id can be added: only if the key still points at this job and has
  no TTL of its own (a TTL key lives out its time, as in BullMQ).
]]
local function removeDeduplicationKeyOf(dedupPrefix, dedupId, jobId)
  if dedupId then
    local dedupKey = dedupPrefix .. dedupId
    if rcall("PTTL", dedupKey) == -1 and rcall("GET", dedupKey) == jobId then
      rcall("DEL", dedupKey)
    end
  end
end

-- A removed job also takes the add kept for after it (keepLastIfActive's "dn:<id>", next
-- to "de:<id>"), as BullMQ's removeDeduplicationKeyIfNeededOnRemoval.
local function removeDeduplicationKey(dedupPrefix, jobKey, jobId)
  local dedupId = rcall("HGET", jobKey, "deid")
  if dedupId and rcall("GET", dedupPrefix .. dedupId) == jobId then
    rcall("DEL", string.sub(dedupPrefix, 1, -4) .. "dn:" .. dedupId)
  end
  removeDeduplicationKeyOf(dedupPrefix, dedupId, jobId)
end
