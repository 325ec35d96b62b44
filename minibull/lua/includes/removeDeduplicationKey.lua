--[[
  Frees a job's deduplication id so that a new job with that id can be added.
  removeDeduplicationKeyOf: when the job ends, only if the key still points at
  it and has no TTL of its own (a TTL key lives out its time, as in BullMQ).
  removeDeduplicationKey: when the job is removed (remove, drain, clean), if the key
  points at it, whatever its TTL, with the add kept for after it (keepLastIfActive's
  "dn:<id>"), as BullMQ's removeDeduplicationKeyIfNeededOnRemoval. Finished jobs
  trimmed by keep counts are not "removed" here (BullMQ's removeJobsByMaxCount
  leaves the key too): their callers pass no prefix.
]]
local function removeDeduplicationKeyOf(dedupPrefix, dedupId, jobId)
  if dedupId then
    local dedupKey = dedupPrefix .. dedupId
    if rcall("PTTL", dedupKey) == -1 and rcall("GET", dedupKey) == jobId then
      rcall("DEL", dedupKey)
    end
  end
end

local function removeDeduplicationKey(dedupPrefix, jobKey, jobId)
  local dedupId = rcall("HGET", jobKey, "deid")
  if dedupId and rcall("GET", dedupPrefix .. dedupId) == jobId then
    rcall("DEL", dedupPrefix .. dedupId, string.sub(dedupPrefix, 1, -4) .. "dn:" .. dedupId)
  end
end
