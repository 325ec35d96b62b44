--[[
  Moves a job from "completed" or "failed" back to "wait" (or "prioritized"),
  clearing its result, for Job.retry and Queue.retry_jobs.
]]
-- @include "addJobToWait"
-- @include "emitEvent"
local function requeueFinishedJob(setKey, waitKey, prioritizedKey, pcKey, metaKey, eventsKey,
                                  prefix, jobId, state, resetAttempts)
  local jobKey = prefix .. jobId
  rcall("ZREM", setKey, jobId)
  rcall("HDEL", jobKey, "finishedOn", "processedOn", "failedReason", "returnvalue", "defa")
  if resetAttempts then
    rcall("HSET", jobKey, "atm", 0)
  end
  local fields = rcall("HMGET", jobKey, "priority", "opts")
  local opts = cjson.decode(fields[2] or "{}")
  local pushCmd = "LPUSH"
  if opts["lifo"] == true then
    pushCmd = "RPUSH"
  end
  addJobToWait(waitKey, prioritizedKey, pcKey, jobId, tonumber(fields[1]) or 0, pushCmd)
  emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", state)
end
