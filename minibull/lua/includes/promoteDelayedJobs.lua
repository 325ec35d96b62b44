--[[
  Moves delayed jobs that are due (up to 1000 at a time) to "wait" or
  "prioritized", and wakes a worker.
]]
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "emitEvent"
-- @include "batches"
-- @include "getDelayedScore"
local function promoteDelayedJobs(delayedKey, waitKey, prioritizedKey, pcKey, markerKey,
                                  metaKey, eventsKey, prefix, now, paused)
  if rcall("ZCARD", delayedKey) == 0 then
    return
  end
  local due = rcall("ZRANGEBYSCORE", delayedKey, 0, highestDueScore(now), "LIMIT", 0, 1000)
  if #due == 0 then
    return
  end
  for from, to in batches(#due, UNPACK_BATCH) do
    rcall("ZREM", delayedKey, unpack(due, from, to))
  end
  for _, jobId in ipairs(due) do
    local jobKey = prefix .. jobId
    local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
    addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, "LPUSH")
    rcall("HSET", jobKey, "delay", 0)
    emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", "delayed")
  end
  addBaseMarker(markerKey, paused)
end
